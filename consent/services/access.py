"""The access log's write side, called by the selectors and services that hand a person's
data to someone (Zulip's habit: the action writes its own audit row), never by views, so
a new endpoint or page that reads through them cannot forget the row.

Each read becomes one access-log row per person (consent's append-only AccessLog: who,
whose, which fields, why, when) plus a structured log line with ids and field names,
never values. A read made for one person also honours the Global Privacy Control signal
its request carried (`Sec-GPC: 1`, an opt-out of sale and sharing), recorded before the
read so that what is shown already reflects it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from consent.events import operator_action_event, personal_data_read_event  # noqa: F401  (operator actions: for other apps)
from consent.services.consents import Evidence, consent_gpc_signal

logger = logging.getLogger("tessera.personal_data_access")


@dataclass(frozen=True)
class Accessor:
    """Who is shown a person's data (`api_key:PREFIX`, `staff:ID`, `data_subject`) and
    what their request signalled: `gpc` for `Sec-GPC: 1`, with the request's evidence
    (hashed before it is stored) for the opt-out it records."""

    actor: str
    gpc: bool = False
    evidence: Evidence | None = None


def personal_data_read(*, accessor: Accessor, profile_ids: Iterable, fields: Iterable[str], purpose: str,
                       detail: dict | None = None) -> int:
    """Rows for a read of people's data (a listing, a lookup, an export); returns how many."""
    ids = sorted({str(pid) for pid in profile_ids})
    if not ids:
        return 0
    fields = sorted(set(fields))
    written = personal_data_read_event(actor=accessor.actor, profile_ids=ids, fields=fields, purpose=purpose,
                                       detail=detail)
    logger.info("personal_data_access", extra={"actor": accessor.actor, "profile_ids": ids, "fields": fields,
                                               "purpose": purpose})
    return written


def subject_data_read(*, accessor: Accessor, profile_id, fields: Iterable[str], purpose: str) -> None:
    """A read made for one person (their profile, consents, receipts, recommendations):
    the request's GPC signal first, then the row."""
    subject_signals_honour(accessor=accessor, profile_id=profile_id)
    personal_data_read(accessor=accessor, profile_ids=[profile_id], fields=fields, purpose=purpose)


def subject_signals_honour(*, accessor: Accessor, profile_id) -> bool:
    """Record the opt-out of sale and sharing a request made for this person signalled
    (once: nothing when it is already withdrawn); True when one was recorded."""
    if not accessor.gpc:
        return False
    return consent_gpc_signal(profile_id=UUID(str(profile_id)), actor=accessor.actor,
                              evidence=accessor.evidence) is not None
