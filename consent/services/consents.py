"""Recording consent changes: the ledger append, the materialized state, the consequences.

Every change is one ConsentEvent appended to the subject's chain, the ConsentState
updated, the other apps' withdrawal (or grant) handlers run and a `consent.changed`
outbox row written, all in one transaction. Reads and writes pseudonymous ids, purposes,
codes and keyed hashes of evidence (IP address, user agent; the raw values stay in
memory); logs nothing personal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cdp.core.crypto_primitives import keyed_hash
from cdp.core.outbox import outbox_put
from consent import registry
from consent.errors import ConsentError, ConsentErrorCode, ProfileMerged
from consent.ledger import heads_lock, ledger_append, subjects_lock
from consent.models import CHANNELS, Channel, ConsentEvent, ConsentState
from consent.notices import (
    bases_table,
    basis_for,
    jurisdiction_check,
    language_check,
    notice_expiry,
    notice_versions,
    purpose_check,
    subject_jurisdiction_set,
    subject_jurisdictions,
)
from consent.policy import grant_expired
from consent.purposes import PURPOSES, Purpose


@dataclass(frozen=True)
class ConsentChange:
    purpose: str
    granted: bool
    notice_version: int | None = None
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class Evidence:
    """Raw evidence, hashed before it is stored; never logged. `note`: the stated evidence of a
    decision recorded for the person (an import's --evidence), stored as written, in the link."""

    ip: str | None = None
    user_agent: str | None = None
    note: str = ""

    def hashes(self) -> dict:
        key = settings.TESSERA_LEDGER_KEY
        return {
            "evidence_note": self.note,
            "ip_hash": keyed_hash(key, self.ip, purpose="consent-evidence-ip") if self.ip else "",
            "user_agent_hash": keyed_hash(key, self.user_agent, purpose="consent-evidence-ua")
            if self.user_agent else "",
        }


@dataclass
class ChangeResult:
    purpose: str
    status: str  # "recorded" or "unchanged"
    event: ConsentEvent | None = None


def channel_check(channel: str) -> str:
    if channel not in CHANNELS:
        raise ConsentError("Unknown channel; use one of " + ", ".join(CHANNELS) + ".",
                           code=ConsentErrorCode.CHANNEL_UNKNOWN)
    return channel


@transaction.atomic
def consents_record(*, profile_id: UUID, changes: list[ConsentChange], channel: str, actor: str,
                    source: str = "", evidence: Evidence | None = None, jurisdiction: str | None = None,
                    language: str | None = None) -> list[ChangeResult]:
    """Record several decisions of one person; a decision that changes nothing is skipped.

    A decision older than the one in force (`occurred_at` before it) is stale and skipped
    too, so a late CMP or CRM sync never reverts a newer choice.
    """
    pid = UUID(str(profile_id))
    [results] = consents_record_many([(pid, changes)], channel=channel, actor=actor, source=source,
                                     evidence=evidence, language=language, jurisdiction=jurisdiction)
    return results


MAX_MERGE_RETRIES = 3


class _SubjectsMerged(Exception):
    def __init__(self, survivors: dict):
        super().__init__("subjects merged meanwhile")
        self.survivors = survivors


def consents_record_many(people: list[tuple[UUID, list[ConsentChange]]], *, channel: str, actor: str,
                         source: str = "", evidence: Evidence | None = None, language: str | None = None,
                         jurisdiction: str | None = None) -> list[list[ChangeResult]]:
    """consents_record for many people in one transaction (a CMP or CRM batch): the heads
    are locked in one stable order and the states, notices and bases read once, instead
    of once per person. Entries are applied in order, so two decisions of one person in
    a batch behave as two calls. Checks every change before recording any.

    A decision about a profile merged into another (before this call, or while it waited
    for the heads) is recorded on the survivor: a merge holds both heads until it
    commits, so what is merged once the heads are ours has carried its states over, and
    a withdrawal sent under the old id must still reach the person. `jurisdiction`: where
    these people are (e.g. from their country), set on them before their decisions.
    """
    channel_check(channel)
    if jurisdiction:
        jurisdiction = jurisdiction_check(jurisdiction)
    versions = notice_versions()
    for _, changes in people:
        for change in changes:
            notice_version_check(change, versions)
    for _attempt in range(MAX_MERGE_RETRIES):
        try:
            with transaction.atomic():  # a retry releases the heads it locked (savepoint)
                return _record_locked(people, versions, channel=channel, actor=actor, source=source,
                                      evidence=evidence, language=language, jurisdiction=jurisdiction)
        except _SubjectsMerged as merged:
            people = [(merged.survivors.get(UUID(str(pid)), pid), changes) for pid, changes in people]
    raise ProfileMerged("The person's profiles kept being merged while this was recorded; send it again.")


def _record_locked(people, versions, *, channel, actor, source, evidence, language,
                   jurisdiction) -> list[list[ChangeResult]]:
    ids = [UUID(str(pid)) for pid, _ in people]
    heads = heads_lock(ids)
    if registry.has_handlers(registry.SURVIVORS):
        survivors = {UUID(str(k)): UUID(str(v)) for answer in registry.run(registry.SURVIVORS, profile_ids=ids)
                     for k, v in answer.items()}
        if survivors:
            raise _SubjectsMerged(survivors)
    if jurisdiction:
        for pid in dict.fromkeys(ids):
            subject_jurisdiction_set(profile_id=pid, jurisdiction=jurisdiction, head=heads[pid])
    states = {(s.profile_id, s.purpose): s
              for s in ConsentState.objects.select_for_update().filter(profile_id__in=sorted(set(ids), key=str))}
    table, jurisdictions = bases_table(), subject_jurisdictions(ids)
    hashes, language = (evidence or Evidence()).hashes(), language_check(language)
    all_results = []
    for pid, (_, changes) in zip(ids, people, strict=True):
        context = _Context(versions=versions, table=table, jurisdiction=jurisdictions.get(pid, ""),
                           evidence=hashes, language=language)
        results = []
        for change in changes:
            state = states.get((pid, change.purpose))
            version = change.notice_version or versions[change.purpose]["current"]
            occurred_at = change.occurred_at or timezone.now()
            if _unchanged(state, change.granted, version, occurred_at):
                results.append(ChangeResult(change.purpose, "unchanged"))
                continue
            event, states[(pid, change.purpose)] = _append(
                heads[pid], state, context, purpose=change.purpose, granted=change.granted, version=version,
                occurred_at=occurred_at, channel=channel, actor=actor, source=source)
            results.append(ChangeResult(change.purpose, "recorded", event))
        all_results.append(results)
    return all_results


def notice_version_check(change: ConsentChange, versions: dict) -> None:
    """A known purpose, and a notice version that was published for it (if one is named)."""
    purpose_check(change.purpose)
    if change.notice_version is not None and not 1 <= change.notice_version <= versions[change.purpose]["current"]:
        raise ConsentError("notice_version names no published notice version for this purpose.",
                           code=ConsentErrorCode.NOTICE_UNKNOWN)


@dataclass
class _Context:
    versions: dict
    table: dict
    jurisdiction: str
    evidence: dict
    language: str


def _unchanged(state: ConsentState | None, granted: bool, version: int, occurred_at: datetime) -> bool:
    if state is None:
        return False
    if occurred_at < state.updated_at:
        return True  # stale
    if state.granted != granted:
        return False
    if not granted:
        return True
    return state.notice_version == version and not grant_expired(state.expires_at, timezone.now())


def _append(head, state, context: _Context, *, purpose: str, granted: bool, version: int, occurred_at: datetime,
            channel: str, actor: str, source: str) -> tuple[ConsentEvent, ConsentState]:
    event = ledger_append(
        head=head, purpose=purpose, granted=granted, notice_version=version,
        basis=basis_for(purpose, context.jurisdiction or None, table=context.table), channel=channel,
        actor=(actor or "unknown")[:120], source=source or "", jurisdiction=context.jurisdiction,
        language=context.language, occurred_at=occurred_at, **context.evidence)
    expires_at = notice_expiry(purpose, version, occurred_at, versions=context.versions) if granted else None
    # `state` is the caller's row, locked (select_for_update) before the head was appended to.
    if state is None:
        state = ConsentState.objects.create(profile_id=head.profile_id, purpose=purpose, granted=granted,
                                            notice_version=version, expires_at=expires_at, event_id=event.id,
                                            updated_at=occurred_at)
    else:
        state.granted, state.notice_version, state.expires_at = granted, version, expires_at
        state.event_id, state.updated_at = event.id, occurred_at
        state.save(update_fields=["granted", "notice_version", "expires_at", "event_id", "updated_at"])
    # The data the purpose covered stops being used in this same transaction.
    registry.run(registry.GRANT if granted else registry.WITHDRAWAL, profile_id=head.profile_id, purpose=purpose)
    outbox_put(topic="consent.changed", payload={
        "profile_id": str(head.profile_id), "event_id": str(event.id), "purpose": purpose, "granted": granted,
        "channel": channel, "basis": event.basis, "notice_version": str(version)})
    return event, state


def consent_set(*, profile_id: UUID, purpose: str, granted: bool, occurred_at: datetime | None = None,
                channel: str = Channel.OPERATOR, actor: str = "system", notice_version: int | None = None,
                evidence: Evidence | None = None, source: str = "") -> bool:
    """Record one decision; returns False when it changes nothing."""
    [result] = consents_record(profile_id=profile_id, channel=channel, actor=actor, source=source,
                               evidence=evidence, changes=[ConsentChange(purpose, granted, notice_version,
                                                                         occurred_at)])
    return result.status == "recorded"


def consent_gpc_signal(*, profile_id: UUID, actor: str, evidence: Evidence | None = None) -> ConsentEvent | None:
    """A Global Privacy Control signal (Sec-GPC: 1) is an opt-out of sale and sharing.

    Recorded as its own ledger event (channel `gpc`) unless sale/sharing is already
    withdrawn, so a browser sending the header on every request adds one event, not many.
    """
    [result] = consents_record(profile_id=profile_id, channel=Channel.GPC, actor=actor, evidence=evidence,
                               changes=[ConsentChange(Purpose.SALE_SHARING.value, False)])
    return result.event


@transaction.atomic
def consent_profiles_merged_many(pairs) -> list[ConsentEvent]:
    """Merged consents for (survivor, absorbed) merges sharing no profile: for each pair the
    most restrictive state wins, written to the survivor's chain.

    A decision recorded only on the absorbed profile (typically an anonymous visitor's)
    carries over; where both decided, a withdrawal beats a grant, and of two grants the
    older notice version and the earlier expiry win. Each change is a ledger event with
    channel `merge`, in pair order, with the people locked and the states, notices and
    bases read once for all pairs; then the other apps' PROFILES_MERGED handlers run once
    with all the pairs.
    """
    pairs = [(UUID(str(survivor)), UUID(str(absorbed))) for survivor, absorbed in pairs]
    if not pairs:
        return []
    ids = [pid for pair in pairs for pid in pair]
    if len(set(ids)) != len(ids):
        raise ValueError("consent_profiles_merged_many takes merges that share no profile")
    # The people, not their heads: most merged people never gave consent and have none.
    # A concurrent first append for one of them waits here (subjects_lock); a head is made
    # only for a survivor that receives an event below.
    subjects_lock(ids)
    heads: dict = {}
    states = {(s.profile_id, s.purpose): s
              for s in ConsentState.objects.select_for_update().filter(profile_id__in=ids)}
    now = timezone.now()
    absorbed_ids = {absorbed for _, absorbed in pairs}
    if any(profile_id in absorbed_ids for profile_id, _ in states):
        # Notices, bases and jurisdictions only matter to the events appended below, and
        # only a merged-away person with consent states gives any (often none has).
        versions, table = notice_versions(), bases_table()
        jurisdictions = subject_jurisdictions([survivor for survivor, _ in pairs])
    else:
        versions, table, jurisdictions = None, None, {}
    events = []
    for survivor, absorbed in pairs:
        context = _Context(versions=versions, table=table, jurisdiction=jurisdictions.get(survivor, ""),
                           evidence={}, language="")
        for purpose in PURPOSES:
            mine, theirs = states.get((survivor, purpose)), states.get((absorbed, purpose))
            theirs = None if theirs is not None and _expired(theirs, now) else theirs
            if theirs is None:
                continue
            if mine is not None and _expired(mine, now):
                mine = None
            if mine is None:
                winner = theirs
            elif not mine.granted or not theirs.granted:
                winner = mine if not mine.granted else theirs
            else:
                winner = min((mine, theirs), key=lambda s: (s.notice_version, s.expires_at or now.max))
            if mine is not None and winner is mine:
                continue
            if mine is not None and mine.granted == winner.granted and mine.notice_version == winner.notice_version:
                continue
            if survivor not in heads:
                heads.update(heads_lock([survivor]))
            event, _ = _append(heads[survivor], mine, context, purpose=purpose, granted=winner.granted,
                               version=winner.notice_version, occurred_at=winner.updated_at,
                               channel=Channel.MERGE, actor=f"merge:{absorbed}", source="")
            events.append(event)
    # Once for all pairs: a handler does its work for every merge of the batch at once.
    registry.run(registry.PROFILES_MERGED, pairs=pairs)
    return events


def _expired(state: ConsentState, now) -> bool:
    return state.granted and grant_expired(state.expires_at, now)
