"""Every form of the consent rule agrees with `decision_status`, on whichever database runs it.

The rule "what does a recorded decision mean now" has one definition (`decision_status`
with `basis_allows`); the forms that run in the database are `status_q` (a filter, and on
PostgreSQL the array query rendered from it) and the one-person query behind `is_allowed`.
Hypothesis generates ledger histories (grants, withdrawals, stale and back-dated
decisions, notices with lifetimes or material changes, bases per jurisdiction) through the
real services; then each form must give the same answer for every person and purpose.
CI runs this file on PostgreSQL as well as SQLite.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent import policy
from consent.models import ConsentState
from consent.notices import notice_current, notice_publish, notice_versions, purpose_basis_set, subject_jurisdiction_set
from consent.services import consent_set

pytestmark = pytest.mark.django_db

PURPOSES = ["analytics", "marketing"]
PEOPLE = 4
JURISDICTIONS = ["GB", "US-CA", "FR"]

decide = st.tuples(st.just("decide"), st.integers(0, PEOPLE - 1), st.sampled_from(PURPOSES), st.booleans(),
                   st.integers(0, 3), st.integers(0, 400))
publish = st.tuples(st.just("publish"), st.sampled_from(PURPOSES), st.booleans(),
                    st.sampled_from([None, 1, 30, 365]))
basis = st.tuples(st.just("basis"), st.sampled_from(PURPOSES), st.sampled_from(["*", "US", "GB"]),
                  st.sampled_from(["consent", "legitimate_interest", "contract"]))
move = st.tuples(st.just("jurisdiction"), st.integers(0, PEOPLE - 1), st.sampled_from(JURISDICTIONS))
histories = st.lists(st.one_of(decide, decide, decide, publish, basis, move), min_size=1, max_size=16)


def _replay(history, people):
    now = timezone.now()
    for step in history:
        if step[0] == "decide":
            _, who, purpose, granted, version, days_ago = step
            # version 0: the current notice; otherwise an older one if it was published.
            version = version if 1 <= version <= notice_current(purpose) else None
            consent_set(profile_id=people[who], purpose=purpose, granted=granted, notice_version=version,
                        occurred_at=now - timedelta(days=days_ago))
        elif step[0] == "publish":
            _, purpose, material, lifetime = step
            notice_publish(purpose=purpose, texts={"en": ("Title", "Body")}, material=material,
                           lifetime_days=lifetime, actor="staff:test")
        elif step[0] == "basis":
            _, purpose, where, chosen = step
            purpose_basis_set(purpose=purpose, jurisdiction=where, basis=chosen, actor="staff:test")
        else:
            _, who, where = step
            subject_jurisdiction_set(profile_id=people[who], jurisdiction=where)


def _check_agreement(people):
    everyone = [*people, uuid.uuid4()]  # and someone with no record at all
    expected = {pid: {s["purpose"]: s for s in policy.effective_states(pid)} for pid in everyone}
    for purpose in PURPOSES:
        allowed = {pid for pid in everyone if expected[pid][purpose]["granted"]}
        assert policy.allowed(everyone, purpose) == allowed
        for pid in everyone:
            assert policy.is_allowed(pid, purpose) == (pid in allowed), (purpose, expected[pid][purpose])

    # status_q against decision_status, also at the instants where a grant expires: the
    # boundary (expires_at <= now) is where a filter and a comparison most easily differ.
    states = list(ConsentState.objects.filter(profile_id__in=people))
    instants = {timezone.now()} | {s.expires_at for s in states if s.expires_at is not None}
    versions = notice_versions()
    for now in instants:
        for purpose in PURPOSES:
            minimum = versions[purpose]["minimum"]
            rows = [s for s in states if s.purpose == purpose]
            for status in policy.RECORDED_STATUSES:
                selected = set(ConsentState.objects.filter(
                    policy.status_q(status, minimum=minimum, now=now), purpose=purpose,
                    profile_id__in=people).values_list("profile_id", flat=True))
                judged = {s.profile_id for s in rows
                          if policy.decision_status(s.granted, s.notice_version, s.expires_at, minimum=minimum,
                                                    now=now) == status}
                assert selected == judged, (status, now)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(history=histories)
def test_every_form_of_the_consent_rule_agrees(history):
    people = [uuid.uuid4() for _ in range(PEOPLE)]
    with transaction.atomic():  # each example starts from the same database
        _replay(history, people)
        _check_agreement(people)
        transaction.set_rollback(True)


def test_the_forms_agree_on_each_status():
    """One person per status, so every branch of the rule is reached whatever Hypothesis draws."""
    withdrawn, expired, stale_notice, granted = people = [uuid.uuid4() for _ in range(4)]
    now = timezone.now()
    consent_set(profile_id=withdrawn, purpose="analytics", granted=False)
    notice_publish(purpose="analytics", texts={"en": ("T", "B")}, lifetime_days=10, actor="staff:test")
    consent_set(profile_id=expired, purpose="analytics", granted=True, occurred_at=now - timedelta(days=11))
    consent_set(profile_id=stale_notice, purpose="analytics", granted=True)
    notice_publish(purpose="analytics", texts={"en": ("T", "B")}, material=True, actor="staff:test")
    consent_set(profile_id=granted, purpose="analytics", granted=True)
    statuses = {pid: policy.effective_states(pid)[0] for pid in people}
    assert [statuses[pid]["status"] for pid in people] == ["withdrawn", "expired", "reconsent_required", "granted"]
    _check_agreement(people)
    assert policy.allowed(people, "analytics") == {granted}
    purpose_basis_set(purpose="analytics", basis="legitimate_interest", actor="staff:test")
    assert policy.allowed(people, "analytics") == {expired, stale_notice, granted}
    _check_agreement(people)
