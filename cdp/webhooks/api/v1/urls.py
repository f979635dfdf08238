from django.urls import path

from cdp.webhooks.api.v1.views import ChangesListApi, WebhookDeleteApi, WebhooksApi, WebhookSecretRotateApi

# Ids are matched as plain strings and checked in the view (a malformed one answers a
# problem+json 404), as in cdp.api.v1.urls.
urlpatterns = [
    path("changes", ChangesListApi.as_view(), name="changes"),
    path("webhooks", WebhooksApi.as_view(), name="webhooks"),
    path("webhooks/<str:webhook_id>", WebhookDeleteApi.as_view(), name="webhook-detail"),
    path("webhooks/<str:webhook_id>/rotate-secret", WebhookSecretRotateApi.as_view(), name="webhook-rotate-secret"),
]
