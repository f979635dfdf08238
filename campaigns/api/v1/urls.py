from django.urls import path

from campaigns.api.v1.views import (
    CampaignAssignmentsApi,
    CampaignCreateApi,
    CampaignDetailApi,
    CampaignResultsApi,
    CampaignStopApi,
    ProfileCampaignApi,
)

urlpatterns: list = [
    path("campaigns", CampaignCreateApi.as_view(), name="campaigns"),
    path("campaigns/<str:key>", CampaignDetailApi.as_view(), name="campaign"),
    path("campaigns/<str:key>/stop", CampaignStopApi.as_view(), name="campaign-stop"),
    path("campaigns/<str:key>/results", CampaignResultsApi.as_view(), name="campaign-results"),
    path("campaigns/<str:key>/assignments", CampaignAssignmentsApi.as_view(), name="campaign-assignments"),
    path("profiles/<str:profile_id>/campaigns/<str:key>", ProfileCampaignApi.as_view(), name="profile-campaign"),
]
