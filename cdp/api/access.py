"""The hook every read of decrypted personal data through the API goes through.

Each read becomes one access-log row per person (consent's append-only AccessLog: who,
whose, which fields, why, when) plus the structured log line (ids and field names, never values).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from consent.services.access import personal_data_read_event

logger = logging.getLogger("tessera.personal_data_access")


def record_personal_data_access(*, actor: str, profile_ids: Iterable, fields: Iterable[str], purpose: str) -> None:
    ids = sorted(str(pid) for pid in profile_ids)
    if not ids:
        return
    # The access log (consent's, append-only, searchable by compliance officers).
    fields = list(fields)
    personal_data_read_event(actor=actor, profile_ids=ids, fields=fields, purpose=purpose)
    logger.info("personal_data_access", extra={
        "actor": actor,
        "profile_ids": ids,
        "fields": sorted(set(fields)),
        "purpose": purpose,
    })


def profile_fields(profile: dict) -> list[str]:
    """Field names (never values) a profile representation discloses."""
    fields = [f"identifiers.{kind}" for kind in profile.get("identifiers", {})]
    fields += [f"attributes.{name}" for name in profile.get("attributes", {})]
    return fields
