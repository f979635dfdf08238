"""Consent and DSR endpoints, mounted under /api/v1/ by cdp/urls.py."""

from django.urls import path

from consent.api.v1.views import (
    ConsentEventsListApi,
    ConsentExportApi,
    ConsentReceiptApi,
    ConsentsBatchApi,
    DsrCreateApi,
    DsrDetailApi,
    NoticesApi,
    NoticesServedApi,
    ProfileConsentsApi,
)

urlpatterns = [
    path("profiles/<str:profile_id>/consents", ProfileConsentsApi.as_view(), name="profile-consents"),
    path("profiles/<str:profile_id>/consent-receipts/<str:event_id>", ConsentReceiptApi.as_view(),
         name="consent-receipt"),
    path("profiles/<str:profile_id>/notices-served", NoticesServedApi.as_view(), name="profile-notices-served"),
    path("consents/batch", ConsentsBatchApi.as_view(), name="consents-batch"),
    path("consents/events", ConsentEventsListApi.as_view(), name="consent-events"),
    path("consents/export", ConsentExportApi.as_view(), name="consents-export"),
    path("notices", NoticesApi.as_view(), name="notices"),
    path("dsr", DsrCreateApi.as_view(), name="dsr-create"),
    path("dsr/<str:request_id>", DsrDetailApi.as_view(), name="dsr-detail"),
]
