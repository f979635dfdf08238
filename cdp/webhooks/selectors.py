"""Reading webhook subscriptions (never their secrets)."""

from __future__ import annotations

from django.db.models import QuerySet

from cdp.webhooks.models import WebhookSubscription


def webhook_list() -> QuerySet[WebhookSubscription]:
    """Live subscriptions; callers order and paginate."""
    return WebhookSubscription.objects.filter(deleted_at__isnull=True)
