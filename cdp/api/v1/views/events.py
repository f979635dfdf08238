"""Interaction events: stored in bulk, read back by person."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from cdp.api.v1.serializers import BatchErrorSerializer, IdentifiersSerializer, entries_field, holds_nul
from cdp.api.v1.views.merges import PAGE_PARAMETERS
from cdp.core.http.errors import InvalidInput, safe_batch_results
from cdp.core.http.idempotency import StoredResponse
from cdp.core.http.permissions import key_boundary, profile_visible_check, source_for_write
from cdp.core.http.schema import IDEMPOTENCY_HEADER, problems
from cdp.core.http.scopes import Scope
from cdp.core.http.views import ApiView, batch_limit, uuid_or_404, validated
from cdp.models import EventType
from cdp.selectors import profile_events_page
from cdp.services.events import events_ingest
from consent.services.gpc import accessor_of

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


class StoredEventSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    type = serializers.ChoiceField(choices=EventType.values)
    name = serializers.CharField(allow_blank=True)
    item_id = serializers.CharField(allow_null=True)
    quantity = serializers.IntegerField(allow_null=True)
    price = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True, coerce_to_string=True)
    rating = serializers.FloatField(allow_null=True)
    occurred_at = serializers.DateTimeField()
    source = serializers.CharField(source="source.key", help_text="Key of the source that sent it.")


class EventsListApi(ApiView):
    required_scopes = {"GET": Scope.EVENTS_READ}
    replica_read_methods = frozenset({"GET"})  # lag-tolerant: a replica may serve (cdp.core.db_routing)

    class OutputSerializer(serializers.Serializer):
        results = StoredEventSerializer(many=True)
        next_cursor = serializers.CharField(allow_null=True, help_text="Pass as `cursor`; null on the last page.")
        has_more = serializers.BooleanField(help_text="Whether another page follows.")

    @extend_schema(
        operation_id="events_list", tags=["events"],
        parameters=[OpenApiParameter("profile_id", str, required=True, description="The person's id."),
                    *PAGE_PARAMETERS],
        responses={200: OutputSerializer, **problems(400, 404, 410)},
        description="Scope `events:read`. A person's events, oldest first (by `occurred_at`), to confirm a sync. "
                    "A merged-away id reads its survivor's events; an erased person is 410. A key bound to a "
                    "source sees only people that source contributed (404 for anyone else, as for an unknown id). "
                    "Each page read is recorded in the access log.",
    )
    def get(self, request):
        raw = request.query_params.get("profile_id")
        if not raw:
            raise InvalidInput("Name the person with profile_id.", errors=[
                {"field": "profile_id", "code": "required", "message": "profile_id is required."}])
        pid = uuid_or_404(raw, message="No profile has this id.")
        profile_visible_check(api_key=request.auth, profile_id=pid)
        page = profile_events_page(profile_id=pid, query_params=request.query_params,
                                   accessor=accessor_of(request, actor=self.actor()))
        return Response({"results": StoredEventSerializer(page.rows, many=True).data,
                         "next_cursor": page.next_cursor, "has_more": page.next_cursor is not None},
                        headers={"Cache-Control": "no-store"})
