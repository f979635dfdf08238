"""The item catalogue in bulk (no personal data)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from cdp.api.v1.serializers import BatchErrorSerializer, entries_field
from cdp.core.http.idempotency import StoredResponse
from cdp.core.http.schema import IDEMPOTENCY_HEADER, problems
from cdp.core.http.scopes import Scope
from cdp.core.http.views import ApiView, batch_limit, validated
from cdp.services.items import items_upsert

MAX_ITEMS = 1000


class ItemSerializer(serializers.Serializer):
    id = serializers.CharField(max_length=128)
    title = serializers.CharField(max_length=300)
    category = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, max_length=20000)
    attributes = serializers.DictField(child=serializers.JSONField(), required=False)


class ItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["created", "updated", "unchanged", "rejected"])
    id = serializers.CharField(allow_null=True)
    errors = BatchErrorSerializer(many=True)


class ItemsBatchApi(ApiView):
    required_scopes = {"POST": Scope.ITEMS_WRITE}

    class InputSerializer(serializers.Serializer):
        items = entries_field(ItemSerializer, help_text=f"At most {MAX_ITEMS} items; upserted by id.")

    class OutputSerializer(serializers.Serializer):
        results = ItemResultSerializer(many=True, help_text="One per item, in input order.")

    @extend_schema(
        operation_id="items_batch", tags=["items"], parameters=[IDEMPOTENCY_HEADER],
        request=InputSerializer, responses={200: OutputSerializer, **problems(400, 409, 413, 422)},
        description=f"Scope `items:write`. At most {MAX_ITEMS} items and 2 MB (TESSERA_MAX_BODY_BYTES).",
    )
    def post(self, request):
        data = validated(self.InputSerializer, request.data)
        batch_limit(data["items"], limit=MAX_ITEMS, noun="items")

        def run() -> StoredResponse:
            return StoredResponse(200, {"results": [r.as_dict() for r in items_upsert(items=data["items"])]})

        return self.idempotent(run)
