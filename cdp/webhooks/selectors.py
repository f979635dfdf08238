"""Reading webhook subscriptions (never their secrets)."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from cdp.core.http.models import ApiKey
from cdp.webhooks.models import WebhookSubscription


def webhook_list(*, owner: ApiKey | None) -> QuerySet[WebhookSubscription]:
    """Live subscriptions `owner` manages (every one for None: the system, operators);
    callers order and paginate."""
    return webhooks_of(WebhookSubscription.objects.filter(deleted_at__isnull=True), owner=owner)


def webhooks_of(subscriptions: QuerySet[WebhookSubscription], *, owner: ApiKey | None) -> QuerySet:
    """The one ownership rule: a key manages the subscriptions it created; the ones made
    before subscriptions had owners belong to no integrator, so only unbound keys (the
    operator's) manage them. Another key's subscription is simply not there (404)."""
    if owner is None:
        return subscriptions
    if owner.source_id is None:
        return subscriptions.filter(Q(owner_key=owner) | Q(owner_key__isnull=True))
    return subscriptions.filter(owner_key=owner)


def topic_subscribed(topic: str) -> bool:
    """Whether a live subscription asked for `topic` (for topics written only on demand)."""
    return any(topic in (events or []) for events in
               WebhookSubscription.objects.filter(deleted_at__isnull=True).values_list("events", flat=True))
