"""Writing outbox messages inside the caller's transaction."""

from __future__ import annotations

from cdp.core.models import OutboxMessage


def outbox_put(*, topic: str, payload: dict) -> OutboxMessage:
    return OutboxMessage.objects.create(topic=topic, payload=payload)


def outbox_put_many(messages: list[tuple[str, dict]]) -> None:
    if messages:
        OutboxMessage.objects.bulk_create([OutboxMessage(topic=t, payload=p) for t, p in messages])
