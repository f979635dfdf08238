"""The one question every other app asks before using personal data.

`allowed(profile_ids, purpose)` → the subset allowed; `is_allowed(profile_id, purpose)`.

What "allowed" means depends on the purpose's legal basis in the subject's jurisdiction
(consent.notices): under consent (the default) only an unexpired grant recorded under a
notice version that still counts (no later material version requiring re-consent)
allows; under legitimate interest everyone is allowed unless they objected (a recorded
withdrawal, a GPC signal included); under contract everyone is allowed. No record means
no consent. Reads ConsentState, Subject and the basis table; logs nothing.

Which app needs which purpose: segmentation → analytics, recommendations →
personalization, third-party attributes → enrichment, campaign exports → marketing,
sharing with third parties → sale_sharing.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from consent.models import DEFAULT_JURISDICTION, Basis, ConsentState, NoticeVersion, PurposeBasis, Subject
from consent.notices import (
    bases_table,
    basis_for,
    notice_minimum,
    notice_versions,
    purpose_bases,
    purpose_check,
    subject_jurisdictions,
)
from consent.purposes import PURPOSES  # noqa: F401  (public: the purposes every check names)


def _chunk() -> int:
    # SQLite binds one placeholder per id (its limit is 32,766); PostgreSQL takes one array.
    return 50_000 if connection.vendor == "postgresql" else 5000


def allowed(profile_ids: Iterable[UUID], purpose: str) -> set[UUID]:
    purpose_check(purpose)
    ids = [pid if isinstance(pid, UUID) else UUID(str(pid)) for pid in profile_ids]
    if not ids:
        return set()
    table = bases_table()
    bases = table[purpose]
    minimum = notice_versions()[purpose]["minimum"]
    now = timezone.now()
    result: set[UUID] = set()
    size = _chunk()
    for start in range(0, len(ids), size):
        chunk = ids[start:start + size]
        if set(bases) == {DEFAULT_JURISDICTION}:
            by_basis = {bases[DEFAULT_JURISDICTION]: chunk}  # the common case: one basis everywhere
        else:
            where = subject_jurisdictions(chunk)
            by_basis: dict[str, list] = {}
            for pid in chunk:
                by_basis.setdefault(basis_for(purpose, where.get(pid), table=table), []).append(pid)
        for basis, members in by_basis.items():
            result.update(_allowed_under(basis, members, purpose, minimum, now))
    return result


def _allowed_under(basis: str, ids: list, purpose: str, minimum: int, now) -> set[UUID]:
    if basis == Basis.CONTRACT:
        return set(ids)
    if basis == Basis.LEGITIMATE_INTEREST:
        objected = _state_ids(ids, purpose, status_q(WITHDRAWN, minimum=minimum, now=now))
        return {pid for pid in ids if pid not in objected}
    return _state_ids(ids, purpose, status_q(GRANTED, minimum=minimum, now=now))


def _state_ids(ids: list, purpose: str, condition: Q) -> set[UUID]:
    rows = ConsentState.objects.filter(condition, purpose=purpose)
    if connection.vendor == "postgresql":
        # One array parameter instead of thousands of placeholders: the IN list's parsing
        # and planning cost more than the index lookups themselves. The rest of the SQL is
        # the ORM's rendering of `condition`, so there is no second copy of the rule.
        table = connection.ops.quote_name(ConsentState._meta.db_table)
        rows = rows.extra(where=[f"{table}.profile_id = ANY(%s)"], params=[ids])  # noqa: S610
    else:
        rows = rows.filter(profile_id__in=ids)
    return set(rows.values_list("profile_id", flat=True))


def is_allowed(profile_id: UUID, purpose: str) -> bool:
    """`allowed` for one person. On PostgreSQL in one round trip (it guards every
    personalized request): the purpose's bases and notice versions, the subject's
    jurisdiction and their recorded decision come back together and are judged here."""
    if connection.vendor != "postgresql":
        return bool(allowed([profile_id], purpose))
    purpose_check(purpose)
    pid = profile_id if isinstance(profile_id, UUID) else UUID(str(profile_id))
    with connection.cursor() as cursor:
        cursor.execute(_ONE_PERSON_SQL.format(bases=PurposeBasis._meta.db_table,
                                              notices=NoticeVersion._meta.db_table,
                                              subjects=Subject._meta.db_table,
                                              states=ConsentState._meta.db_table),
                       {"purpose": purpose, "profile_id": pid})
        bases, notices, jurisdiction, granted, notice_version, expires_at = cursor.fetchone()
    if not notices:
        return bool(allowed([pid], purpose))  # notices not created yet: the general path creates them
    basis = basis_for(purpose, jurisdiction, table={purpose: purpose_bases(bases)})
    status = decision_status(granted, notice_version, expires_at, minimum=notice_minimum(notices),
                             now=timezone.now())
    return basis_allows(basis, status)


# What a recorded decision means now. `decision_status` is the rule; `status_q` is the
# same rule as a filter on ConsentState rows (tests/consent/test_policy_agreement.py checks
# that they agree on generated ledger histories, on SQLite and on PostgreSQL).
NOT_RECORDED, WITHDRAWN, EXPIRED, RECONSENT_REQUIRED, GRANTED = (
    "not_recorded", "withdrawn", "expired", "reconsent_required", "granted")
RECORDED_STATUSES = (WITHDRAWN, EXPIRED, RECONSENT_REQUIRED, GRANTED)


def grant_expired(expires_at, now) -> bool:
    return expires_at is not None and expires_at <= now


def decision_status(granted: bool | None, notice_version: int | None, expires_at, *, minimum: int, now) -> str:
    """What a recorded decision (None: none recorded) means now."""
    if granted is None:
        return NOT_RECORDED
    if not granted:
        return WITHDRAWN
    if grant_expired(expires_at, now):
        return EXPIRED
    if notice_version < minimum:
        return RECONSENT_REQUIRED
    return GRANTED


def status_q(status: str, *, minimum: int, now) -> Q:
    """The ConsentState rows whose `decision_status` is `status` (a recorded one)."""
    live = Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    conditions = {
        WITHDRAWN: Q(granted=False),
        EXPIRED: Q(granted=True, expires_at__lte=now),
        RECONSENT_REQUIRED: Q(granted=True, notice_version__lt=minimum) & live,
        GRANTED: Q(granted=True, notice_version__gte=minimum) & live,
    }
    return conditions[status]


def basis_allows(basis: str, status: str) -> bool:
    """Contract: always; legitimate interest: unless they objected; consent: a valid grant."""
    if basis == Basis.CONTRACT:
        return True
    if basis == Basis.LEGITIMATE_INTEREST:
        return status != WITHDRAWN
    return status == GRANTED


_ONE_PERSON_SQL = """
SELECT ARRAY(SELECT ARRAY[jurisdiction, basis] FROM {bases} WHERE purpose = %(purpose)s),
       ARRAY(SELECT ARRAY[version, material::int] FROM {notices} WHERE purpose = %(purpose)s),
       (SELECT jurisdiction FROM {subjects} WHERE profile_id = %(profile_id)s),
       state.granted, state.notice_version, state.expires_at
FROM (VALUES (1)) AS one
LEFT JOIN {states} AS state ON state.profile_id = %(profile_id)s AND state.purpose = %(purpose)s
"""


def effective_states(profile_id: UUID) -> list[dict]:
    """Every purpose for one person: what is recorded, what it means now, and why."""
    pid = profile_id if isinstance(profile_id, UUID) else UUID(str(profile_id))
    table, versions, now = bases_table(), notice_versions(), timezone.now()
    jurisdiction = subject_jurisdictions([pid]).get(pid)
    states = {s.purpose: s for s in ConsentState.objects.filter(profile_id=pid)}
    result = []
    for purpose in table:
        basis = basis_for(purpose, jurisdiction, table=table)
        state = states.get(purpose)
        status = decision_status(state.granted if state else None, state.notice_version if state else None,
                                 state.expires_at if state else None, minimum=versions[purpose]["minimum"], now=now)
        granted = basis_allows(basis, status)
        result.append({
            "purpose": purpose, "granted": granted, "status": status, "basis": basis,
            "notice_version": state.notice_version if state else versions[purpose]["current"],
            "current_notice_version": versions[purpose]["current"],
            "expires_at": state.expires_at if state else None,
            "updated_at": state.updated_at if state else None,
            "event_id": state.event_id if state else None,
        })
    return result


def consent_decisions(events: Iterable) -> dict:
    """Each event's word: "granted", "declined" (a refusal with no earlier grant for that
    purpose: the person said no when first asked) or "withdrawn" (a refusal after a grant).
    Pass all of one person's events (their merged ids included): the words read the history."""
    words, granted_once = {}, set()
    for event in sorted(events, key=lambda e: (e.occurred_at, e.recorded_at, e.seq)):
        if event.granted:
            granted_once.add(event.purpose)
            words[event.id] = "granted"
        else:
            words[event.id] = "withdrawn" if event.purpose in granted_once else "declined"
    return words


def consent_grants_lapsed(events: Iterable) -> dict:
    """Event id → (status, expires_at) for each grant among `events` that is still the person's
    decision in force but no longer allows: "expired" (its lifetime ran out) or
    "reconsent_required" (a material notice was published since). A grant that lapsed this way
    was neither declined nor withdrawn, and the people reading it must be able to tell."""
    granted = [e.id for e in events if e.granted]
    if not granted:
        return {}
    versions, now, lapsed = notice_versions(), timezone.now(), {}
    for state in ConsentState.objects.filter(event_id__in=granted):
        status = decision_status(state.granted, state.notice_version, state.expires_at,
                                 minimum=versions[state.purpose]["minimum"], now=now)
        if status in (EXPIRED, RECONSENT_REQUIRED):
            lapsed[state.event_id] = (status, state.expires_at)
    return lapsed
