"""The product catalogue: upserting items by id (no personal data here)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from cdp.models import Item
from cdp.services.records import error

LIMITS = {"id": 128, "title": 300, "category": 100, "description": 20000}


@dataclass
class ItemResult:
    index: int
    status: str
    errors: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"index": self.index, "status": self.status, "id": self.id_value, "errors": self.errors}

    id_value: str | None = None


def _validate(raw, errors: list) -> dict | None:
    if not isinstance(raw, dict):
        errors.append(error("item", "wrong_type", "An item must be an object."))
        return None
    clean = {}
    for name in ("id", "title", "category", "description"):
        value = raw.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and name == "id":
            value = str(value)
        if value is None and name == "description":
            value = ""
        if not isinstance(value, str) or (name != "description" and not value.strip()):
            code = "required" if value is None else "wrong_type"
            errors.append(error(name, code, f"{name} must be a non-empty string."))
            continue
        if len(value) > LIMITS[name]:
            errors.append(error(name, "too_long", f"{name} may hold at most {LIMITS[name]} characters."))
            continue
        if "\x00" in value:  # PostgreSQL text cannot hold NUL: refused here, not a 500 at insert
            errors.append(error(name, "invalid_character", f"{name} may not contain NUL characters."))
            continue
        clean[name] = value.strip()
    attributes = raw.get("attributes") or {}
    if not isinstance(attributes, dict):
        errors.append(error("attributes", "wrong_type", "attributes must be an object."))
    elif _holds_nul(attributes):  # nor can jsonb (\u0000)
        errors.append(error("attributes", "invalid_character", "attributes may not contain NUL characters."))
    clean["attributes"] = attributes
    return None if errors else clean


def _holds_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


@transaction.atomic
def items_upsert(*, items: list) -> list[ItemResult]:
    results: list[ItemResult] = []
    valid: dict[str, tuple[int, dict]] = {}
    for index, raw in enumerate(items):
        errors: list[dict] = []
        clean = _validate(raw, errors)
        if clean is None:
            results.append(ItemResult(index, "rejected", errors))
        else:
            valid[clean["id"]] = (index, clean)  # a later duplicate in the batch wins
            results.append(ItemResult(index, "pending", id_value=clean["id"]))
    existing = Item.objects.in_bulk(list(valid))
    creates, updates = [], []
    fields = ("title", "category", "description", "attributes")
    for item_id, (index, clean) in valid.items():
        current = existing.get(item_id)
        if current is None:
            creates.append(Item(**clean))
            results[index].status = "created"
        elif any(getattr(current, f) != clean[f] for f in fields):
            for f in fields:
                setattr(current, f, clean[f])
            updates.append(current)
            results[index].status = "updated"
        else:
            results[index].status = "unchanged"
    for result in results:
        if result.status == "pending":
            result.status = "unchanged"  # superseded by a later copy in the same batch
    Item.objects.bulk_create(creates, batch_size=1000)
    Item.objects.bulk_update(updates, list(fields), batch_size=1000)
    return results
