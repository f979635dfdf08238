"""Derived data follows the person: erasure, merges, access export, and the withdrawal race."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction
from django.utils import timezone
from personalization_helpers import fake_model_fit, shop_population

from consent import registry
from consent.services import consent_set
from personalization.locks import derived_data_write_lock
from personalization.models import PipelineRun, ProfileFeatures, Recommendation, RefreshPending, SegmentMembership
from personalization.services import pipeline

pytestmark = pytest.mark.django_db


@pytest.fixture
def ran(db, monkeypatch):
    monkeypatch.setattr("personalization.services.recommendations.model_fit", fake_model_fit)
    shop = shop_population(people=30)
    run = pipeline.pipeline_run_create(params={"chunk_size": 100, "k": 3})
    pipeline.pipeline_run_sync(run_id=run.id)
    return shop


def test_erasure_deletes_everything_derived(ran):
    person = sorted(ran.analytics & ran.personalization)[0]
    RefreshPending.objects.create(profile_id=person, committed_at=timezone.now())  # a refresh still waiting
    counts = {}
    for result in registry.run(registry.ERASE, profile_id=person):
        counts.update(result or {})
    assert counts["recommendations"] > 0 and counts["segment_memberships"] == 1 and counts["features"] == 1
    assert counts["refresh_pending"] == 1
    for model in (Recommendation, SegmentMembership, ProfileFeatures, RefreshPending):
        assert not model.objects.filter(profile_id=person).exists()


def test_a_withdrawal_with_nothing_derived_to_delete_logs_nothing(db, caplog):
    """Issue 17: load_demo printed 1,058 `personalization_withdrawal` INFO lines with zero
    counts. A withdrawal that deletes nothing is not news; one that does is one line, no ids."""
    import uuid

    person = uuid.uuid4()
    consent_set(profile_id=person, purpose="analytics", granted=True)
    with caplog.at_level("INFO", logger="personalization"):
        consent_set(profile_id=person, purpose="analytics", granted=False)
    assert not [r for r in caplog.records if r.getMessage() == "personalization_withdrawal"]


def test_a_withdrawal_that_deletes_derived_data_logs_one_line_without_ids(ran, caplog):
    person = sorted(ran.analytics & ran.personalization)[0]
    with caplog.at_level("INFO", logger="personalization"):
        consent_set(profile_id=person, purpose="analytics", granted=False)
    [record] = [r for r in caplog.records if r.getMessage() == "personalization_withdrawal"]
    assert record.tables and str(person) not in str(record.__dict__)


def test_the_access_export_holds_segments_and_explanations(ran):
    person = sorted(ran.analytics & ran.personalization)[0]
    data = {}
    for contribution in registry.run(registry.EXPORT, profile_id=person, aliases=[]):
        data.update(contribution or {})
    section = data["personalization"]
    assert section["segments"][0]["segment"] and len(section["segments"][0]["rfm_score"]) == 3
    assert section["recommendations"][0]["explanation"]["text"]


def test_a_merge_drops_what_the_absorbed_profile_had(ran):
    survivor, absorbed = sorted(ran.analytics & ran.personalization)[:2]
    registry.run(registry.PROFILES_MERGED, pairs=[(survivor, absorbed)])
    assert not Recommendation.objects.filter(profile_id=absorbed).exists()
    assert Recommendation.objects.filter(profile_id=survivor).exists()


def test_several_merges_at_once_drop_what_each_absorbed_profile_had(ran):
    people = sorted(ran.analytics & ran.personalization)[:6]
    pairs = [(people[0], people[1]), (people[2], people[3]), (str(people[4]), str(people[5]))]
    others = set(ran.analytics | ran.personalization) - set(people)
    derived = (Recommendation, SegmentMembership, ProfileFeatures)
    before = {model: model.objects.filter(profile_id__in=others).count() for model in derived}
    registry.run(registry.PROFILES_MERGED, pairs=pairs)
    for model in derived:
        assert not model.objects.filter(profile_id__in=people[1::2]).exists()
        assert all(model.objects.filter(profile_id=survivor).exists() for survivor in people[0::2])
        assert model.objects.filter(profile_id__in=others).count() == before[model]  # nobody else's


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_withdrawal_racing_a_chunk_write_leaves_nothing_behind(postgres):
    """The chunk checked consent and is writing; the withdrawal waits for it, then deletes."""
    shop = shop_population(people=3)
    person = sorted(shop.personalization)[0]
    run = PipelineRun.objects.create(status="running", active=None)
    writing, withdrawn = threading.Event(), threading.Event()

    def chunk() -> None:
        try:
            with transaction.atomic():
                derived_data_write_lock()
                Recommendation.objects.create(run=run, profile_id=person, rank=1, item_id="x", title="x",
                                              score=1.0, explanation={}, model_version="m",
                                              created_at=timezone.now())
                writing.set()
                time.sleep(1.0)  # the withdrawal arrives while the chunk is still writing
        finally:
            connection.close()

    def withdraw() -> None:
        try:
            writing.wait()
            consent_set(profile_id=person, purpose="personalization", granted=False)
            withdrawn.set()
        finally:
            connection.close()

    threads = [threading.Thread(target=chunk), threading.Thread(target=withdraw)]
    for thread in threads:
        thread.start()
    writing.wait()
    time.sleep(0.3)
    assert not withdrawn.is_set()  # blocked behind the chunk's write transaction
    for thread in threads:
        thread.join()
    assert withdrawn.is_set()
    assert not Recommendation.objects.filter(profile_id=person).exists()
