"""Recording consent: ledger events, evidence, withdrawal in the same transaction, merges, GPC."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from cdp.core.models import OutboxMessage
from cdp.services.merges import profile_merge
from cdp.services.resolution import profiles_ingest
from consent import policy, registry
from consent.errors import ConsentError
from consent.ledger import ledger_verify
from consent.models import ConsentEvent, ConsentState
from consent.notices import subject_jurisdictions
from consent.services import ConsentChange, Evidence, consent_gpc_signal, consent_set, consents_record

pytestmark = pytest.mark.django_db


def test_a_change_is_a_ledger_event_with_hashed_evidence_and_the_notice_version():
    person = uuid.uuid4()
    [result] = consents_record(profile_id=person, channel="preference_center", actor="subject",
                               evidence=Evidence(ip="203.0.113.9", user_agent="Mozilla/5.0 Canary"),
                               jurisdiction="GB", language="de",
                               changes=[ConsentChange("marketing", True)])
    event = result.event
    assert (event.purpose, event.granted, event.notice_version, event.channel, event.seq) == (
        "marketing", True, 1, "preference_center", 1)
    assert event.jurisdiction == "GB" and event.language == "de" and event.basis == "consent"
    assert len(event.ip_hash) == 64 and "203.0.113.9" not in event.ip_hash
    assert event.user_agent_hash and "Canary" not in event.user_agent_hash
    state = ConsentState.objects.get(profile_id=person, purpose="marketing")
    assert state.event_id == event.id and state.granted
    message = OutboxMessage.objects.get(topic="consent.changed")
    assert message.payload == {"profile_id": str(person), "event_id": str(event.id), "purpose": "marketing",
                               "granted": True, "channel": "preference_center", "basis": "consent",
                               "notice_version": "1"}


def test_unchanged_and_stale_decisions_record_nothing():
    person = uuid.uuid4()
    assert consent_set(profile_id=person, purpose="analytics", granted=True)
    assert not consent_set(profile_id=person, purpose="analytics", granted=True)
    stale = timezone.now() - timedelta(days=1)
    assert not consent_set(profile_id=person, purpose="analytics", granted=False, occurred_at=stale)
    assert policy.is_allowed(person, "analytics")
    assert ConsentEvent.objects.filter(profile_id=person).count() == 1
    with pytest.raises(ConsentError):
        consent_set(profile_id=person, purpose="analytics", granted=True, notice_version=9)
    with pytest.raises(ConsentError):
        consent_set(profile_id=person, purpose="analytics", granted=True, channel="carrier_pigeon")


def test_withdrawal_runs_handlers_in_the_same_transaction():
    person = uuid.uuid4()
    consent_set(profile_id=person, purpose="personalization", granted=True)
    seen = []

    def handler(*, profile_id, purpose):
        seen.append((profile_id, purpose, transaction.get_connection().in_atomic_block))
        raise RuntimeError("handler failed")

    registry.register(registry.WITHDRAWAL, handler)
    try:
        with pytest.raises(RuntimeError):
            consent_set(profile_id=person, purpose="personalization", granted=False)
    finally:
        registry.unregister(registry.WITHDRAWAL, handler)
    assert seen == [(person, "personalization", True)]
    # The handler's failure rolled the withdrawal back whole: event, state, outbox.
    assert policy.is_allowed(person, "personalization")
    assert ConsentEvent.objects.filter(profile_id=person).count() == 1
    assert not OutboxMessage.objects.filter(topic="consent.changed", payload__granted=False).exists()
    assert ledger_verify().intact


def test_gpc_is_its_own_opt_out_event_once():
    person = uuid.uuid4()
    consent_set(profile_id=person, purpose="sale_sharing", granted=True)
    event = consent_gpc_signal(profile_id=person, actor="subject")
    assert event.channel == "gpc" and not event.granted and event.purpose == "sale_sharing"
    assert consent_gpc_signal(profile_id=person, actor="subject") is None
    assert not policy.is_allowed(person, "sale_sharing")


def test_merges_carry_anonymous_consent_over_and_the_most_restrictive_state_wins(source_factory):
    shop = source_factory("shop")
    known, anonymous = profiles_ingest(source=shop, records=[
        {"external_id": "1", "identifiers": {"email": "known@example.com"}},
        {"external_id": "2", "identifiers": {"anonymous_id": "anon-77"}},
    ])
    known_id, anonymous_id = uuid.UUID(known.profile_id), uuid.UUID(anonymous.profile_id)
    consent_set(profile_id=anonymous_id, purpose="analytics", granted=True, channel="cmp")       # carries over
    consent_set(profile_id=anonymous_id, purpose="marketing", granted=False, channel="cmp")      # beats a grant
    consent_set(profile_id=known_id, purpose="marketing", granted=True, channel="api")
    consent_set(profile_id=known_id, purpose="personalization", granted=True, channel="api")    # kept
    consent_set(profile_id=anonymous_id, purpose="personalization", granted=True, channel="cmp")
    [merged] = profiles_ingest(source=shop, records=[
        {"external_id": "3", "identifiers": {"email": "known@example.com", "anonymous_id": "anon-77"}}])
    assert merged.status == "merged" and merged.profile_id == str(known_id)
    assert policy.allowed([known_id], "analytics") == {known_id}
    assert not policy.is_allowed(known_id, "marketing")
    assert policy.is_allowed(known_id, "personalization")
    merge_events = ConsentEvent.objects.filter(profile_id=known_id, channel="merge").order_by("seq")
    assert [(e.purpose, e.granted) for e in merge_events] == [("analytics", True), ("marketing", False)]
    assert merge_events[0].actor == f"merge:{anonymous_id}"
    assert ledger_verify().intact


@pytest.mark.parametrize("in_memory", [True, False], ids=["one-batch", "one-at-a-time"])
def test_several_merges_in_one_batch_merge_each_pairs_consents(source_factory, monkeypatch, in_memory):
    """Three merges stored together (one consent pass, one handler call) end as three
    merges one at a time (profile_merge each) do."""
    monkeypatch.setattr("cdp.services.resolution._Resolver.defer_merges", in_memory)
    handled = []
    monkeypatch.setitem(registry._HANDLERS, registry.PROFILES_MERGED,
                        [*registry._HANDLERS[registry.PROFILES_MERGED], lambda *, pairs: handled.append(pairs)])
    shop = source_factory("shop")
    results = profiles_ingest(source=shop, records=[
        {"external_id": f"k{n}", "identifiers": {"email": f"known{n}@example.com"}} for n in range(3)] + [
        {"external_id": f"a{n}", "identifiers": {"anonymous_id": f"anon-{n}"}} for n in range(3)])
    known = [uuid.UUID(r.profile_id) for r in results[:3]]
    anonymous = [uuid.UUID(r.profile_id) for r in results[3:]]
    consent_set(profile_id=anonymous[0], purpose="analytics", granted=True, channel="cmp")   # carries over
    consent_set(profile_id=known[1], purpose="marketing", granted=True, channel="api")
    consent_set(profile_id=anonymous[1], purpose="marketing", granted=False, channel="cmp")  # beats a grant
    consent_set(profile_id=known[2], purpose="personalization", granted=False, channel="api")  # kept
    consent_set(profile_id=anonymous[2], purpose="personalization", granted=True, channel="cmp")
    merged = profiles_ingest(source=shop, records=[
        {"external_id": f"m{n}", "identifiers": {"email": f"known{n}@example.com", "anonymous_id": f"anon-{n}"}}
        for n in range(3)])
    assert [m.status for m in merged] == ["merged"] * 3
    assert [uuid.UUID(m.profile_id) for m in merged] == known  # the older profiles survive
    assert [pair for pairs in handled for pair in pairs] == list(zip(known, anonymous))
    if in_memory:
        assert len(handled) == 1  # all three merges in one call
    states = {(s.profile_id, s.purpose): s.granted for s in ConsentState.objects.filter(profile_id__in=known)}
    assert states == {(known[0], "analytics"): True, (known[1], "marketing"): False,
                      (known[2], "personalization"): False}
    merge_events = ConsentEvent.objects.filter(channel="merge").order_by("seq")
    assert [(e.profile_id, e.purpose, e.granted, e.actor) for e in merge_events] == [
        (known[0], "analytics", True, f"merge:{anonymous[0]}"), (known[1], "marketing", False, f"merge:{anonymous[1]}")]
    assert ledger_verify().intact


def test_profile_merge_still_calls_consent(source_factory):
    shop = source_factory("shop")
    a, b = profiles_ingest(source=shop, records=[
        {"external_id": "1", "identifiers": {"email": "a@example.com"}},
        {"external_id": "2", "identifiers": {"email": "b@example.com"}}])
    consent_set(profile_id=b.profile_id, purpose="enrichment", granted=True)
    profile_merge(survivor_id=uuid.UUID(a.profile_id), absorbed_id=uuid.UUID(b.profile_id))
    assert policy.is_allowed(uuid.UUID(a.profile_id), "enrichment")


def test_a_batch_records_exactly_what_one_call_per_person_records():
    """consents_record_many (one transaction, heads and states read once) leaves the same
    decisions, the same per-person chains and the same outbox messages as a call per person,
    and applies two decisions of one person in their order."""
    from consent.services import consents_record_many

    def decisions(a, b, c):
        return [(a, [ConsentChange("marketing", True), ConsentChange("analytics", True)]),
                (b, [ConsentChange("marketing", False)]),
                (a, [ConsentChange("marketing", False)]),  # the same person later in the batch
                (c, [ConsentChange("personalization", True)]),
                (b, [ConsentChange("marketing", False)])]  # changes nothing

    one_by_one = [uuid.uuid4() for _ in range(3)]
    singles = [consents_record(profile_id=pid, changes=changes, channel="crm_sync", actor="api_key:t")
               for pid, changes in decisions(*one_by_one)]
    together = [uuid.uuid4() for _ in range(3)]
    batched = consents_record_many(decisions(*together), channel="crm_sync", actor="api_key:t")
    status = [[(r.purpose, r.status) for r in results] for results in batched]
    assert status == [[(r.purpose, r.status) for r in results] for results in singles]
    assert status[2] == [("marketing", "recorded")] and status[4] == [("marketing", "unchanged")]

    def summary(people):
        states = {(people.index(s.profile_id), s.purpose, s.granted)
                  for s in ConsentState.objects.filter(profile_id__in=people)}
        chains = [list(ConsentEvent.objects.filter(profile_id=pid).order_by("seq")
                       .values_list("seq", "purpose", "granted")) for pid in people]
        messages = OutboxMessage.objects.filter(topic="consent.changed",
                                                payload__profile_id__in=[str(p) for p in people]).count()
        return states, chains, messages

    assert summary(together) == summary(one_by_one)
    assert not policy.is_allowed(together[0], "marketing") and policy.is_allowed(together[0], "analytics")
    assert ledger_verify().intact


def test_a_batch_checks_every_decision_before_recording_any():
    from consent.services import consents_record_many

    people = [uuid.uuid4(), uuid.uuid4()]
    with pytest.raises(ConsentError) as raised:
        consents_record_many([(people[0], [ConsentChange("marketing", True)]),
                              (people[1], [ConsentChange("marketing", True, notice_version=99)])],
                             channel="crm_sync", actor="api_key:t")
    assert raised.value.code == "notice_unknown"
    assert not ConsentEvent.objects.filter(profile_id__in=people).exists()


def two_people(source_factory) -> tuple[uuid.UUID, uuid.UUID]:
    shop = source_factory("shop")
    first, second = profiles_ingest(source=shop, records=[
        {"external_id": "1", "identifiers": {"email": "a@example.com"}},
        {"external_id": "2", "identifiers": {"email": "b@example.com"}}])
    return uuid.UUID(first.profile_id), uuid.UUID(second.profile_id)


def test_a_decision_sent_under_a_merged_away_id_reaches_the_survivor(source_factory):
    survivor_id, absorbed_id = two_people(source_factory)
    consent_set(profile_id=survivor_id, purpose="marketing", granted=True)
    profile_merge(survivor_id=survivor_id, absorbed_id=absorbed_id)
    # A CMP that resolved the person before the merge withdraws under the old id.
    [result] = consents_record(profile_id=absorbed_id, channel="cmp", actor="cmp", jurisdiction="US-CA",
                               changes=[ConsentChange("marketing", False)])
    assert result.status == "recorded" and result.event.profile_id == survivor_id
    assert result.event.jurisdiction == "US-CA"
    assert not policy.is_allowed(survivor_id, "marketing")
    assert not ConsentEvent.objects.filter(profile_id=absorbed_id).exists()
    assert subject_jurisdictions([survivor_id, absorbed_id]) == {survivor_id: "US-CA"}
    assert ledger_verify().intact


def decision_during_merge(survivor_id, absorbed_id, change: ConsentChange) -> list:
    """Record `change` for the absorbed id from a second connection while a merge of the two
    people is open on a first; checks the decision waits for the merge; returns its results."""
    import threading

    merging, commit, done = threading.Event(), threading.Event(), {}

    def merge():
        from django.db import connection as thread_connection

        with transaction.atomic():
            profile_merge(survivor_id=survivor_id, absorbed_id=absorbed_id)
            merging.set()
            commit.wait(10)
        thread_connection.close()

    def decide():
        from django.db import connection as thread_connection

        done["result"] = consents_record(profile_id=absorbed_id, channel="cmp", actor="cmp", changes=[change])
        thread_connection.close()

    merger = threading.Thread(target=merge)
    merger.start()
    assert merging.wait(10)
    decider = threading.Thread(target=decide)
    decider.start()
    decider.join(0.5)
    assert decider.is_alive()  # waiting for the merge to commit
    commit.set()
    merger.join(15)
    decider.join(15)
    return done["result"]


@pytest.mark.django_db(transaction=True)
def test_a_withdrawal_waiting_on_a_merge_lands_on_the_survivor(postgres, source_factory):
    """The merge holds both people's heads; a withdrawal for the absorbed id waits, then
    finds the id merged and goes to the survivor instead of a profile nobody reads."""
    survivor_id, absorbed_id = two_people(source_factory)
    consent_set(profile_id=survivor_id, purpose="marketing", granted=True)
    consent_set(profile_id=absorbed_id, purpose="marketing", granted=True)
    [result] = decision_during_merge(survivor_id, absorbed_id, ConsentChange("marketing", False))
    assert result.event.profile_id == survivor_id
    assert not policy.is_allowed(survivor_id, "marketing")
    assert ledger_verify().intact


def test_merging_people_who_never_gave_consent_makes_no_ledger_heads(source_factory):
    from consent.models import ChainHead

    survivor_id, absorbed_id = two_people(source_factory)
    profile_merge(survivor_id=survivor_id, absorbed_id=absorbed_id)
    assert not ChainHead.objects.exists()
    consent_set(profile_id=absorbed_id, purpose="analytics", granted=True)  # under the old id
    assert list(ChainHead.objects.values_list("profile_id", flat=True)) == [survivor_id]
    assert ledger_verify().intact


@pytest.mark.django_db(transaction=True)
def test_a_first_consent_for_a_person_being_merged_waits_and_lands_on_the_survivor(postgres, source_factory):
    """The absorbed person has no chain head to lock: the merge and the first append
    queue on the person themselves (subjects_lock)."""
    survivor_id, absorbed_id = two_people(source_factory)
    [result] = decision_during_merge(survivor_id, absorbed_id, ConsentChange("analytics", True))
    assert result.event.profile_id == survivor_id
    assert policy.is_allowed(survivor_id, "analytics")
    assert ledger_verify().intact
