"""Interaction events in bulk."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from cdp.api.permissions import source_for_write
from cdp.api.schema import IDEMPOTENCY_HEADER, problems
from cdp.api.scopes import Scope
from cdp.api.services.idempotency import StoredResponse
from cdp.api.v1.serializers import BatchErrorSerializer, IdentifiersSerializer, entries_field
from cdp.api.v1.views.base import ApiView, batch_limit, validated
from cdp.models import EventType
from cdp.services.events import events_ingest

MAX_EVENTS = 5000
# 5,000 events of a few hundred bytes each do not fit the 2 MB default body limit.
MAX_EVENT_BATCH_BYTES = 5 * 1024 * 1024


class EventSerializer(serializers.Serializer):
    profile = IdentifiersSerializer(required=False, help_text="The person by identifiers, or use profile_id.")
    profile_id = serializers.UUIDField(required=False)
    type = serializers.ChoiceField(choices=EventType.values)
    name = serializers.CharField(required=False, max_length=200)
    item_id = serializers.CharField(required=False, max_length=128,
                                    help_text="Required for view, add_to_cart, purchase and rating.")
    quantity = serializers.IntegerField(required=False, min_value=0)
    price = serializers.DecimalField(required=False, max_digits=12, decimal_places=2)
    rating = serializers.FloatField(required=False)
    occurred_at = serializers.DateTimeField(required=False, help_text="Default: when received.")
    message_id = serializers.CharField(required=False, max_length=200,
                                       help_text="Deduplicates: the same message_id from a source is stored once.")


class EventResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["accepted", "duplicate", "held", "rejected", "suppressed"])
    profile_id = serializers.UUIDField(allow_null=True)
    errors = BatchErrorSerializer(many=True)


class EventsBatchApi(ApiView):
    required_scopes = {"POST": Scope.EVENTS_WRITE}
    max_body_bytes = MAX_EVENT_BATCH_BYTES

    class InputSerializer(serializers.Serializer):
        source = serializers.CharField(max_length=64)
        events = entries_field(EventSerializer, help_text=f"At most {MAX_EVENTS} events.")

    class OutputSerializer(serializers.Serializer):
        results = EventResultSerializer(many=True, help_text="One per event, in input order.")

    @extend_schema(
        operation_id="events_batch", tags=["events"], parameters=[IDEMPOTENCY_HEADER],
        request=InputSerializer, responses={200: OutputSerializer, **problems(400, 409, 413, 422)},
        description=f"Scope `events:write`. At most {MAX_EVENTS} events and 5 MB. An unknown person named by a "
                    "first-party source gets a new profile; a bad event is rejected alone.",
    )
    def post(self, request):
        data = validated(self.InputSerializer, request.data)
        batch_limit(data["events"], limit=MAX_EVENTS, noun="events")
        source = source_for_write(api_key=request.auth, source_key=data["source"])

        def run() -> StoredResponse:
            results = events_ingest(source=source, events=data["events"])
            return StoredResponse(200, {"results": [r.as_dict() for r in results]})

        return self.idempotent(run)
