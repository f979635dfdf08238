"""The change feed and webhook subscription endpoints."""

from __future__ import annotations

from datetime import timedelta

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from cdp.core.changes import changes_list
from cdp.core.http.idempotency import StoredResponse
from cdp.core.http.pagination import page_limit, paginate
from cdp.core.http.schema import IDEMPOTENCY_HEADER, problems
from cdp.core.http.scopes import Scope
from cdp.core.http.views import ApiView, uuid_or_404, validated
from cdp.core.outbox import CHANGE_TYPES
from cdp.webhooks.models import WebhookSubscription
from cdp.webhooks.selectors import webhook_list
from cdp.webhooks.services.subscriptions import (
    DEFAULT_ROTATION_WINDOW,
    MAX_BATCH_SIZE,
    MAX_ROTATION_WINDOW,
    WEBHOOK_EVENTS,
    webhook_create,
    webhook_delete,
    webhook_secret_rotate,
)

NO_WEBHOOK = "No webhook has this id."


class ChangeSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The change's event id; webhooks send the same as `Tessera-Event-Id`.")
    position = serializers.IntegerField(help_text="Order in the feed.")
    type = serializers.ChoiceField(choices=CHANGE_TYPES)
    profile_id = serializers.UUIDField(allow_null=True)
    occurred_at = serializers.DateTimeField()
    data = serializers.DictField(help_text="Ids and purposes only, the same object a webhook delivery carries.")


class ChangesListApi(ApiView):
    required_scopes = {"GET": Scope.CHANGES_READ}
    replica_read_methods = frozenset({"GET"})  # lag-tolerant: a replica may serve (cdp.core.db_routing)

    class OutputSerializer(serializers.Serializer):
        results = ChangeSerializer(many=True)
        next_cursor = serializers.CharField(help_text="Never null: pass it as `cursor` to resume.")
        has_more = serializers.BooleanField(help_text="True when calling again at once would return more.")

    @extend_schema(
        operation_id="changes_list", tags=["changes"],
        parameters=[OpenApiParameter("cursor", str, description="`next_cursor` of the previous call; "
                                                                "omit to start at the beginning."),
                    OpenApiParameter("limit", int, description="Page size, 1-1000 (default 100).")],
        responses={200: OutputSerializer, **problems(400)},
        description="Scope `changes:read`. Profile and consent changes in a stable order. A change committed "
                    "later never appears before a cursor already handed out, so resuming from `next_cursor` "
                    "misses nothing and repeats nothing.",
    )
    def get(self, request):
        page = changes_list(cursor=request.query_params.get("cursor"),
                            limit=page_limit(request.query_params.get("limit")))
        return Response({"results": page.results, "next_cursor": page.next_cursor, "has_more": page.has_more})


class WebhookSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.URLField()
    events = serializers.ListField(child=serializers.ChoiceField(choices=WEBHOOK_EVENTS))
    batch_size = serializers.IntegerField(help_text="Changes per POST (1: each change alone).")
    created_at = serializers.DateTimeField()
    secret_rotated_at = serializers.DateTimeField(allow_null=True)
    previous_secret_expires_at = serializers.DateTimeField(
        allow_null=True, help_text="Until then deliveries are signed with the previous secret too.")


class WebhookWithSecretSerializer(WebhookSerializer):
    secret = serializers.CharField(allow_null=True, help_text="`whsec_...`, shown only in this response "
                                                              "(null when an Idempotency-Key replays it).")


def webhook_as_dict(subscription: WebhookSubscription) -> dict:
    def iso(value):
        return value.isoformat() if value else None

    return {"id": str(subscription.id), "url": subscription.url, "events": list(subscription.events),
            "batch_size": subscription.batch_size, "created_at": iso(subscription.created_at),
            "secret_rotated_at": iso(subscription.secret_rotated_at),
            "previous_secret_expires_at": iso(subscription.previous_secret_expires_at)}


class _SecretShownOnce(ApiView):
    def with_secret_once(self, run_service) -> Response:
        """Run an idempotent write whose response holds a new secret.

        The stored (replayable) response never holds the secret, so no secret sits in the
        idempotency table; only the request that made it sees it.
        """
        shown = {}

        def run() -> StoredResponse:
            status, result = run_service()
            shown["secret"] = result.secret
            return StoredResponse(status, {**webhook_as_dict(result.subscription), "secret": None})

        response = self.idempotent(run)
        if "secret" in shown:
            response.data = {**response.data, "secret": shown["secret"]}
        return response


class WebhooksApi(_SecretShownOnce):
    required_scopes = {"GET": Scope.WEBHOOKS_MANAGE, "POST": Scope.WEBHOOKS_MANAGE}

    class InputSerializer(serializers.Serializer):
        url = serializers.CharField(help_text="https URL (http allowed outside production); no redirects are "
                                              "followed.")
        events = serializers.ListField(child=serializers.CharField(), help_text=f"Among {', '.join(WEBHOOK_EVENTS)}.")
        batch_size = serializers.IntegerField(
            required=False, min_value=1, max_value=MAX_BATCH_SIZE,
            help_text="Opt-in batching: up to this many changes per POST as `{\"events\": [...]}` (default 1: "
                      "each change alone, as its own JSON object). See docs/webhooks.md.")

    class OutputSerializer(serializers.Serializer):
        results = WebhookSerializer(many=True)
        next_cursor = serializers.CharField(allow_null=True, help_text="Pass as `cursor`; null on the last page.")

    @extend_schema(
        operation_id="webhooks_list", tags=["webhooks"],
        parameters=[OpenApiParameter("limit", int, description="Page size, 1-1000 (default 100)."),
                    OpenApiParameter("cursor", str, description="`next_cursor` of the previous page.")],
        responses={200: OutputSerializer, **problems(400)},
        description="Scope `webhooks:manage`. Live subscriptions this key created (each belongs to the key "
                    "that created it), oldest first; secrets are never listed.",
    )
    def get(self, request):
        page = paginate(webhook_list(owner=request.auth), query_params=request.query_params)
        return Response({"results": [webhook_as_dict(s) for s in page.rows], "next_cursor": page.next_cursor})

    @extend_schema(
        operation_id="webhooks_create", tags=["webhooks"], request=InputSerializer, parameters=[IDEMPOTENCY_HEADER],
        responses={201: WebhookWithSecretSerializer, **problems(400, 409, 422)},
        description="Scope `webhooks:manage`. Subscribes a URL to event types and answers the signing secret, "
                    "once. The subscription belongs to this key (and its source): only this key lists, rotates "
                    "or deletes it. 409 `webhook_url_exists` when a live subscription has this URL.",
    )
    def post(self, request):
        data = validated(self.InputSerializer, request.data)
        return self.with_secret_once(lambda: (201, webhook_create(url=data["url"], events=data["events"],
                                                                  owner=request.auth,
                                                                  batch_size=data.get("batch_size", 1))))


class WebhookDeleteApi(ApiView):
    required_scopes = {"DELETE": Scope.WEBHOOKS_MANAGE}

    @extend_schema(
        operation_id="webhooks_delete", tags=["webhooks"], responses={204: None, **problems(404)},
        description="Scope `webhooks:manage`. Stops deliveries at once (pending ones are cancelled) and "
                    "destroys the secrets. Only the key that created the subscription may; for any other key it "
                    "is 404, as an unknown id.",
    )
    def delete(self, request, webhook_id):
        webhook_delete(subscription_id=uuid_or_404(webhook_id, message=NO_WEBHOOK), owner=request.auth)
        return Response(status=204)


class WebhookSecretRotateApi(_SecretShownOnce):
    required_scopes = {"POST": Scope.WEBHOOKS_MANAGE}

    class InputSerializer(serializers.Serializer):
        previous_secret_expires_in = serializers.IntegerField(
            required=False, min_value=0, max_value=int(MAX_ROTATION_WINDOW.total_seconds()),
            help_text=f"Seconds the current secret keeps signing beside the new one (default "
                      f"{int(DEFAULT_ROTATION_WINDOW.total_seconds())}; 0 retires it at once).")

    @extend_schema(
        operation_id="webhooks_rotate_secret", tags=["webhooks"], request=InputSerializer,
        parameters=[IDEMPOTENCY_HEADER], responses={200: WebhookWithSecretSerializer, **problems(400, 404, 409, 422)},
        description="Scope `webhooks:manage`. A new secret signs from now on and is answered once; during the "
                    "window deliveries carry a `v1` signature for each of the two secrets. Only the key that "
                    "created the subscription may; for any other key it is 404, as an unknown id.",
    )
    def post(self, request, webhook_id):
        subscription_id = uuid_or_404(webhook_id, message=NO_WEBHOOK)
        data = validated(self.InputSerializer, request.data or {})
        window = timedelta(seconds=data.get("previous_secret_expires_in",
                                            DEFAULT_ROTATION_WINDOW.total_seconds()))
        return self.with_secret_once(lambda: (200, webhook_secret_rotate(subscription_id=subscription_id,
                                                                         previous_valid_for=window,
                                                                         owner=request.auth)))
