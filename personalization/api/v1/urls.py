from django.urls import path

from personalization.api.v1.predictions import ProfilePredictionsApi
from personalization.api.v1.views import ProfileRecommendationsApi, SegmentMembersApi, SegmentsListApi

# Ids are matched as plain strings and checked in the view, so a malformed one answers a
# problem+json 404 like an unknown one.
urlpatterns: list = [
    path("profiles/<str:profile_id>/recommendations", ProfileRecommendationsApi.as_view(),
         name="profile-recommendations"),
    path("profiles/<str:profile_id>/predictions", ProfilePredictionsApi.as_view(), name="profile-predictions"),
    path("segments", SegmentsListApi.as_view(), name="segments"),
    path("segments/<str:segment_id>/members", SegmentMembersApi.as_view(), name="segment-members"),
]
