from django.urls import path

from cdp.api.v1.views.events import EventsBatchApi, EventsListApi
from cdp.api.v1.views.items import ItemsBatchApi
from cdp.api.v1.views.merges import MergeConflictsListApi, MergeUnmergeApi
from cdp.api.v1.views.profiles import ProfileDetailApi, ProfilesBatchApi, ProfilesLookupApi

# Ids are matched as plain strings and checked in the view, so a malformed one answers
# a problem+json 404 like an unknown one instead of Django's HTML page.
urlpatterns: list = [
    path("profiles/batch", ProfilesBatchApi.as_view(), name="profiles-batch"),
    path("profiles/lookup", ProfilesLookupApi.as_view(), name="profiles-lookup"),
    path("profiles/<str:profile_id>", ProfileDetailApi.as_view(), name="profile-detail"),
    path("merge-conflicts", MergeConflictsListApi.as_view(), name="merge-conflicts"),
    path("merges/<str:merge_id>/unmerge", MergeUnmergeApi.as_view(), name="merge-unmerge"),
    path("events", EventsListApi.as_view(), name="events-list"),
    path("events/batch", EventsBatchApi.as_view(), name="events-batch"),
    path("items/batch", ItemsBatchApi.as_view(), name="items-batch"),
]
