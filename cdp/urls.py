from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from cdp import health
from web.staff import StaffAdminAuthenticationForm

# The admin's log-in says "locked" like /staff/login/ (the lock itself is the auth backend's).
admin.site.login_form = StaffAdminAuthenticationForm

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("cdp.api.v1.urls")),
    path("api/v1/", include("consent.api.v1.urls")),
    path("api/v1/", include("cdp.webhooks.api.v1.urls")),
    path("api/v1/", include("personalization.api.v1.urls")),
    path("api/v1/", include("campaigns.api.v1.urls")),
    path("v1/", include("cdp.segment.urls")),
    path("", include("web.urls")),
]
