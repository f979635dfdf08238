"""Interaction events in bulk."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from cdp.api.v1.serializers import BatchErrorSerializer, IdentifiersSerializer, entries_field, holds_nul
from cdp.core.http.errors import safe_batch_results
from cdp.core.http.idempotency import StoredResponse
from cdp.core.http.permissions import key_boundary, source_for_write
from cdp.core.http.schema import IDEMPOTENCY_HEADER, problems
from cdp.core.http.scopes import Scope
from cdp.core.http.views import ApiView, batch_limit, validated
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
                    "first-party source gets a new profile; a bad event is rejected alone. For a key bound to a "
                    "source, a `profile_id` of a person that source did not contribute is rejected as "
                    "`unknown_profile`, like an unknown id.",
    )
    def post(self, request):
        data = validated(self.InputSerializer, request.data)
        batch_limit(data["events"], limit=MAX_EVENTS, noun="events")
        source = source_for_write(api_key=request.auth, source_key=data["source"])

        visible = key_boundary(request.auth)

        def run() -> StoredResponse:
            return StoredResponse(200, {"results": safe_batch_results(
                _ingest(source, data["events"], profiles_visible=visible))})

        return self.idempotent(run)


def _ingest(source, events: list, *, profiles_visible) -> list[dict]:
    """Events with a NUL character anywhere are rejected alone here: PostgreSQL's text and
    jsonb cannot hold one, so the insert would fail the whole batch with a 500."""
    bad = {index for index, event in enumerate(events) if holds_nul(event)}
    stored = iter(events_ingest(source=source, events=[e for i, e in enumerate(events) if i not in bad],
                                profiles_visible=profiles_visible)
                  if len(bad) < len(events) else [])
    results = []
    for index in range(len(events)):
        if index in bad:
            results.append({"index": index, "status": "rejected", "profile_id": None, "errors": [{
                "field": "event", "code": "invalid_character", "message": "An event may not contain NUL characters."}]})
        else:
            results.append({**next(stored).as_dict(), "index": index})
    return results
