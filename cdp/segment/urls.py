"""Mounted at /v1/ (Segment's paths); `import` is Segment's older name for batch. Any other
path under /v1/ answers 404 in Segment's error shape, which SDKs read, rather than HTML."""

from django.urls import path, re_path

from cdp.segment.mapping import MESSAGE_TYPES
from cdp.segment.views import SegmentBatchApi, SegmentMessageApi, segment_not_found

app_name = "segment"

urlpatterns = [
    path("batch", SegmentBatchApi.as_view(), name="batch"),
    path("import", SegmentBatchApi.as_view(), name="import"),
    *[path(message_type, SegmentMessageApi.as_view(message_type=message_type), name=message_type)
      for message_type in MESSAGE_TYPES],
    re_path(r"", segment_not_found, name="not-found"),
]
