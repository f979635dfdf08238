"""Creating, deleting and rotating the secret of webhook subscriptions.

Reads and writes subscriptions and their data keys. The signing secret is generated
here, returned once to the caller and stored only encrypted (AES-GCM under the
subscription's own data key, bound to the subscription id and field). Logs nothing
secret or personal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from cdp import crypto
from cdp.core.errors import ApplicationError, Conflict, NotFound
from cdp.core.http.errors import ApiErrorCode
from cdp.core.http.models import ApiKey
from cdp.core.outbox import TOPICS
from cdp.models import DataKey
from cdp.webhooks import signing
from cdp.webhooks.errors import WebhookErrorCode
from cdp.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from cdp.webhooks.selectors import webhooks_of
from cdp.webhooks.targets import TargetRejected, url_check

WEBHOOK_EVENTS = tuple(sorted(TOPICS))
MAX_BATCH_SIZE = 500
DEFAULT_ROTATION_WINDOW = timedelta(hours=24)
MAX_ROTATION_WINDOW = timedelta(days=7)
_FIELD_CURRENT = "secret"  # field names: associated data of the ciphertexts
_FIELD_PREVIOUS = "previous_secret"


@dataclass(frozen=True)
class SubscriptionWithSecret:
    subscription: WebhookSubscription
    secret: str  # plaintext, for the one response that shows it


class InvalidSubscription(ApplicationError):
    """400 with the contract's `errors` member, naming the field but never its value."""

    def __init__(self, message: str, *, field: str, code: str):
        super().__init__(message, code=ApiErrorCode.VALIDATION_FAILED,
                         extra={"errors": [{"field": field, "code": code, "message": message}]})


def webhook_create(*, url: str, events: list[str], owner: ApiKey | None = None,
                   batch_size: int = 1) -> SubscriptionWithSecret:
    """`owner`: the API key creating it, which alone will manage it (None: ownerless, as
    subscriptions made before owners existed). `batch_size`: changes per POST (1: one
    change a POST; more: `{"events": [...]}`, see services/batches.py)."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise InvalidSubscription(f"batch_size is a whole number from 1 to {MAX_BATCH_SIZE}.", field="batch_size",
                                  code=WebhookErrorCode.INVALID)
    try:
        url = url_check(url)
    except TargetRejected as rejected:
        raise InvalidSubscription(str(rejected), field="url", code=rejected.code) from None
    events = events_check(events)
    secret = signing.secret_new()
    try:
        with transaction.atomic():
            key_row, dek = crypto.data_key_new()
            key_row.save()
            subscription = WebhookSubscription(url=url, events=events, data_key=key_row, owner_key=owner,
                                               batch_size=batch_size,
                                               owner_source_id=owner.source_id if owner else None)
            subscription.secret_cipher = _seal(dek, subscription, _FIELD_CURRENT, secret)
            subscription.save()
    except IntegrityError:
        # The partial unique index on live URLs, also under a concurrent create.
        raise Conflict("A webhook with this URL already exists.", code=WebhookErrorCode.URL_TAKEN) from None
    return SubscriptionWithSecret(subscription, secret)


def events_check(events) -> list[str]:
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise InvalidSubscription("Give a non-empty list of event types.", field="events",
                                  code=WebhookErrorCode.INVALID)
    unknown = sorted({e for e in events if e not in TOPICS})
    if unknown:
        # Our own vocabulary is listed, the caller's unknown strings are not echoed.
        raise InvalidSubscription(f"Event types must be among: {', '.join(WEBHOOK_EVENTS)}.", field="events",
                                  code=WebhookErrorCode.UNKNOWN_EVENT)
    return sorted(set(events))


@transaction.atomic
def webhook_delete(*, subscription_id, owner: ApiKey | None = None) -> None:
    """Stop deliveries at once and shred the secrets; the delivery log is kept.

    `owner`: the API key asking; another key's subscription is unknown to it (None: the
    system or an operator)."""
    subscription = _live_for_update(subscription_id, owner=owner)
    now = timezone.now()
    subscription.deleted_at = now
    subscription.previous_secret_cipher = None
    subscription.previous_secret_expires_at = None
    key_id, subscription.data_key = subscription.data_key_id, None
    subscription.save(update_fields=["deleted_at", "previous_secret_cipher", "previous_secret_expires_at",
                                     "data_key"])
    DataKey.objects.filter(pk=key_id).delete()
    WebhookDelivery.objects.filter(subscription=subscription, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.CANCELLED, next_attempt_at=None)


@transaction.atomic
def webhook_secret_rotate(*, subscription_id, previous_valid_for: timedelta = DEFAULT_ROTATION_WINDOW,
                          now: datetime | None = None, owner: ApiKey | None = None) -> SubscriptionWithSecret:
    """A new secret signs from now on; the current one keeps signing for `previous_valid_for`.

    Only two secrets ever sign: rotating again inside a window retires the oldest at
    once. A zero window retires the current secret at once (for a leaked one). `owner`
    as in webhook_delete.
    """
    if not timedelta(0) <= previous_valid_for <= MAX_ROTATION_WINDOW:
        raise InvalidSubscription("The previous secret may stay valid for 0 to 7 days.",
                                  field="previous_secret_expires_in", code=WebhookErrorCode.OUT_OF_RANGE)
    now = now or timezone.now()
    subscription = _live_for_update(subscription_id, owner=owner)
    dek = crypto.data_key_open(subscription.data_key)
    current = _open(dek, subscription, _FIELD_CURRENT, subscription.secret_cipher)
    secret = signing.secret_new()
    subscription.secret_cipher = _seal(dek, subscription, _FIELD_CURRENT, secret)
    if previous_valid_for:
        subscription.previous_secret_cipher = _seal(dek, subscription, _FIELD_PREVIOUS, current)
        subscription.previous_secret_expires_at = now + previous_valid_for
    else:
        subscription.previous_secret_cipher = None
        subscription.previous_secret_expires_at = None
    subscription.secret_rotated_at = now
    subscription.save(update_fields=["secret_cipher", "previous_secret_cipher", "previous_secret_expires_at",
                                     "secret_rotated_at"])
    return SubscriptionWithSecret(subscription, secret)


def webhook_signing_secrets(subscription: WebhookSubscription, *, now: datetime) -> list[str]:
    """The secrets that sign a delivery made at `now`: the current one, then the
    previous one while its rotation window lasts."""
    dek = crypto.data_key_open(subscription.data_key)
    secrets = [_open(dek, subscription, _FIELD_CURRENT, subscription.secret_cipher)]
    expires = subscription.previous_secret_expires_at
    if subscription.previous_secret_cipher is not None and expires is not None and now < expires:
        secrets.append(_open(dek, subscription, _FIELD_PREVIOUS, subscription.previous_secret_cipher))
    return secrets


def _live_for_update(subscription_id, *, owner: ApiKey | None) -> WebhookSubscription:
    live = WebhookSubscription.objects.filter(pk=subscription_id, deleted_at__isnull=True)
    subscription = (webhooks_of(live, owner=owner).select_for_update(of=("self",)).select_related("data_key")
                    .first())
    if subscription is None:
        raise NotFound("No webhook has this id.")
    return subscription


def _seal(dek: bytes, subscription: WebhookSubscription, field: str, secret: str) -> bytes:
    return crypto.encrypt_value(dek, owner_id=subscription.id, field=field, value=secret)


def _open(dek: bytes, subscription: WebhookSubscription, field: str, ciphertext) -> str:
    return crypto.decrypt_value(dek, owner_id=subscription.id, field=field, ciphertext=bytes(ciphertext))
