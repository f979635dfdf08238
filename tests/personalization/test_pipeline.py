"""The pipeline end to end in process, its chunks, gates, failures and consent at run time."""

from __future__ import annotations

import pytest
from personalization_helpers import fake_model_fit, shop_population

from cdp.models import Event, EventType
from consent.services import consent_set
from personalization import tasks
from personalization.models import (
    ChunkStatus,
    PipelineChunk,
    PipelineDeadLetter,
    PipelineRun,
    Prediction,
    ProfileFeatures,
    Recommendation,
    RunStatus,
    Segment,
    Segmentation,
    SegmentMembership,
    Stage,
)
from personalization.services import pipeline
from personalization.services.features import features_compute

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_model(monkeypatch):
    monkeypatch.setattr("personalization.services.recommendations.model_fit", fake_model_fit)


@pytest.fixture
def shop(db):
    return shop_population(people=60)


def run_sync(**params):
    run = pipeline.pipeline_run_create(params={"chunk_size": 16, **params})
    return pipeline.pipeline_run_sync(run_id=run.id)


def test_the_pipeline_runs_end_to_end_and_honours_every_purpose(shop, fake_model):
    run = run_sync()

    assert run.status == RunStatus.SUCCEEDED and run.stage == Stage.DONE and run.active is None
    assert run.chunks_total == 4
    assert set(run.timings) >= {"features", "segments_fit", "segments_assign", "recommender_fit",
                                "recommendations", "releases", "total"}
    featured = set(ProfileFeatures.objects.filter(run=run).values_list("profile_id", flat=True))
    segmented = set(SegmentMembership.objects.values_list("profile_id", flat=True))
    scored = set(Recommendation.objects.filter(run=run).values_list("profile_id", flat=True))
    assert featured == shop.analytics  # everyone allowing analytics has events
    assert segmented == shop.analytics
    assert scored == shop.personalization
    assert run.counts["featured"] == len(featured) and run.counts["scored"] == len(scored)
    assert run.counts["featured_skipped_no_consent"] == len(shop.profile_ids) - len(shop.analytics)
    seg = Segmentation.objects.get(run=run)
    assert seg.k == 4 and seg.definition.statistic == "segment_definition" and seg.definition.epsilon > 0
    assert len(set(Segment.objects.filter(segmentation=seg).values_list("name", flat=True))) == seg.k


def test_recommendations_exclude_purchases_and_carry_explanations(shop, fake_model):
    run = run_sync()
    purchased = set(Event.objects.filter(type=EventType.PURCHASE).values_list("profile_id", "item_id"))
    recs = list(Recommendation.objects.filter(run=run))
    assert recs
    for rec in recs:
        assert (rec.profile_id, rec.item_id) not in purchased
        explanation = rec.explanation
        assert explanation["text"].endswith(".") and len(explanation["text"]) > 20
        assert "personalization" in explanation["purposes"]
        assert explanation["model_version"] == "fake-1"
        if explanation["fallback"] is None:
            assert explanation["because_of"] and explanation["data_sources"] == ["shop"]
            assert abs(sum(explanation["parts"].values()) - 1) < 1e-3
    per_profile = {}
    for rec in recs:
        per_profile.setdefault(rec.profile_id, []).append(rec.rank)
    assert all(sorted(ranks) == list(range(1, len(ranks) + 1)) for ranks in per_profile.values())


def test_a_segment_fallback_names_the_segment_and_analytics(shop, fake_model):
    browser = shop.profile_ids[7]  # i % 7 == 0: only browses; allows both purposes
    assert browser in shop.analytics and browser in shop.personalization
    Event.objects.filter(profile_id=browser).update(item_id="not-in-catalogue")
    run = run_sync()
    rec = Recommendation.objects.filter(run=run, profile_id=browser).first()
    assert rec.explanation["fallback"] == "segment_popularity"
    assert rec.explanation["segment"]["name"] in set(Segment.objects.values_list("name", flat=True))
    assert rec.explanation["purposes"] == ["personalization", "analytics"]
    assert "segment" in rec.explanation["text"]


def test_consent_is_checked_when_the_chunk_runs_not_when_planned(shop, fake_model):
    run = pipeline.pipeline_run_create(params={"chunk_size": 1000})
    pipeline.pipeline_run_plan(run_id=run.id)
    withdrawn = sorted(shop.analytics & shop.personalization)[0]
    consent_set(profile_id=withdrawn, purpose="analytics", granted=False)
    consent_set(profile_id=withdrawn, purpose="personalization", granted=False)
    pipeline.pipeline_run_sync(run_id=run.id)
    assert not ProfileFeatures.objects.filter(profile_id=withdrawn).exists()
    assert not SegmentMembership.objects.filter(profile_id=withdrawn).exists()
    assert not Recommendation.objects.filter(profile_id=withdrawn).exists()


def test_a_chunk_runs_once_however_often_it_is_delivered(shop, fake_model):
    run = pipeline.pipeline_run_create(params={"chunk_size": 1000})
    pipeline.pipeline_run_plan(run_id=run.id)
    first = features_compute(run_id=run.id, chunk_index=0)
    again = features_compute(run_id=run.id, chunk_index=0)
    assert first == len(shop.analytics) and again == 0
    assert ProfileFeatures.objects.filter(run=run).count() == len(shop.analytics)
    chunk = PipelineChunk.objects.get(run=run, stage=Stage.FEATURES, index=0)
    assert chunk.status == ChunkStatus.DONE and chunk.attempts == 1 and chunk.count == first


def test_a_second_run_replaces_the_first_and_withdrawal_deletes_at_once(shop, fake_model):
    first = run_sync()
    second = run_sync()
    assert not Recommendation.objects.filter(run=first).exists()
    assert Recommendation.objects.filter(run=second).exists()
    assert set(SegmentMembership.objects.values_list("segmentation__run", flat=True)) == {first.id, second.id}
    person = sorted(shop.analytics & shop.personalization)[0]
    consent_set(profile_id=person, purpose="personalization", granted=False)
    assert not Recommendation.objects.filter(profile_id=person).exists()
    assert SegmentMembership.objects.filter(profile_id=person).exists()
    consent_set(profile_id=person, purpose="analytics", granted=False)
    assert not SegmentMembership.objects.filter(profile_id=person).exists()
    assert not ProfileFeatures.objects.filter(profile_id=person).exists()


def test_only_one_run_at_a_time(shop):
    pipeline.pipeline_run_create()
    with pytest.raises(pipeline.PipelineActive):
        pipeline.pipeline_run_create()
    assert tasks.pipeline_run(trigger="schedule") is None  # beat skips instead of failing


def test_a_failing_stage_fails_the_run_and_keeps_nothing_served(shop, monkeypatch):
    def broken(data, *, seed):
        raise ValueError("boom")

    monkeypatch.setattr("personalization.services.recommendations.model_fit", broken)
    run = pipeline.pipeline_run_create(params={"chunk_size": 20})
    with pytest.raises(ValueError):
        pipeline.pipeline_run_sync(run_id=run.id)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.active is None
    assert run.errors[-1]["stage"] == Stage.RECOMMENDER_FIT
    assert "boom" not in run.errors[-1]["message"]  # only the error type: texts may quote data
    # Operators read the message on /ops/: the stage by its name, not its code.
    assert run.errors[-1]["message"].startswith("Recommender fit failed:") and "recommender_fit" not in \
        run.errors[-1]["message"]
    assert not SegmentMembership.objects.exists() and not ProfileFeatures.objects.exists()
    pipeline.pipeline_run_create()  # the failed run no longer blocks the next


def test_the_task_graph_runs_through_eager_celery(shop, fake_model, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    run = pipeline.pipeline_run_create(params={"chunk_size": 16, "k": 3})
    tasks.pipeline_run_plan.delay(run_id=run.id)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.errors
    assert Recommendation.objects.filter(run=run).values("profile_id").distinct().count() == len(shop.personalization)
    assert Prediction.objects.filter(run=run).exists() and "predictions" in run.timings


def test_a_stray_release_task_does_not_jump_the_predictions_stage(shop, fake_model):
    from personalization.models import DpRelease

    run = pipeline.pipeline_run_create(params={"chunk_size": 16})
    pipeline.pipeline_run_plan(run_id=run.id)
    PipelineRun.objects.filter(id=run.id).update(stage=Stage.PREDICTIONS)

    tasks.statistics_release.apply(kwargs={"run_id": run.id}, throw=True)

    assert PipelineRun.objects.get(id=run.id).stage == Stage.PREDICTIONS
    assert not DpRelease.objects.filter(run_id=run.id).exists()


def test_an_early_chord_callback_waits_and_a_duplicate_does_nothing(shop, fake_model):
    run = pipeline.pipeline_run_create(params={"chunk_size": 16})
    pipeline.pipeline_run_plan(run_id=run.id)
    features_compute(run_id=run.id, chunk_index=0)  # three chunks still pending
    from celery.exceptions import Retry

    with pytest.raises(Retry):
        tasks.segmentation_fit.apply(kwargs={"run_id": run.id}, throw=True)
    assert PipelineRun.objects.get(id=run.id).stage == Stage.FEATURES
    for index in (1, 2, 3):
        features_compute(run_id=run.id, chunk_index=index)
    assert pipeline.pipeline_stage_advance(run_id=run.id, stage=Stage.FEATURES)
    assert not pipeline.pipeline_stage_advance(run_id=run.id, stage=Stage.FEATURES)  # the twin loses


def test_a_task_that_keeps_failing_is_dead_lettered_and_fails_its_run(shop, monkeypatch):
    run = pipeline.pipeline_run_create(params={"chunk_size": 1000})
    pipeline.pipeline_run_plan(run_id=run.id)

    def broken(**_):
        raise KeyError("a value that must not be stored")

    monkeypatch.setattr("personalization.services.features.features_compute", broken)
    result = tasks.features_compute.apply(kwargs={"run_id": run.id, "chunk_index": 0}, throw=False)
    assert result.failed()
    letter = PipelineDeadLetter.objects.get()
    assert letter.task_name == "personalization.features_compute"
    assert letter.arguments == {"stage": "features", "run_id": run.id, "chunk_index": 0}
    assert letter.error_type == "KeyError" and "must not" not in letter.error_message
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.errors[-1]["chunk"] == 0
    assert run.errors[-1]["message"] == "Features (fan-out), part 1, failed after 0 retries (KeyError)."


def test_transient_errors_are_retried_with_backoff_and_a_cap():
    task = tasks.features_compute
    assert tasks.OperationalError in task.autoretry_for
    assert task.retry_backoff and task.retry_backoff_max == 120 and task.retry_jitter and task.max_retries == 5
    assert task.acks_late and task.reject_on_worker_lost
    assert task.time_limit == 300 and task.soft_time_limit == 270
    assert tasks.segmentation_fit.time_limit == 900


def test_the_watchdog_redispatches_a_stalled_run(shop, fake_model, settings, monkeypatch):
    from django.utils import timezone

    run = pipeline.pipeline_run_create(params={"chunk_size": 1000})
    pipeline.pipeline_run_plan(run_id=run.id)
    PipelineRun.objects.filter(id=run.id).update(heartbeat_at=timezone.now() - timezone.timedelta(hours=1))
    dispatched = []
    monkeypatch.setattr(tasks, "pipeline_dispatch", dispatched.append)
    assert tasks.pipeline_watchdog() == [run.id]
    assert dispatched == [run.id]
    assert tasks.pipeline_watchdog() == []  # its heartbeat was renewed


def test_the_pipeline_with_the_real_recommender_explains_exactly(shop):
    from personalization.recommender import RecommenderConfig
    from personalization.recommender.tuning import CAPACITY_TOLERANCE

    run = run_sync()
    assert run.model_version.startswith("hybrid-")
    # The run records the configuration its search chose, and serves exactly that one.
    chosen = run.params["recommender"]
    assert RecommenderConfig(**chosen["config"]).model_version == run.model_version
    assert chosen["trials"] >= 1 and chosen["search_validation_ndcg@10"] >= chosen["start_validation_ndcg@10"]
    # The re-ranking's knob was chosen on the same validation split, within its tolerance.
    assert chosen["validation_ndcg@10"] >= (1 - CAPACITY_TOLERANCE) * chosen["search_validation_ndcg@10"]
    purchased = set(Event.objects.filter(type=EventType.PURCHASE).values_list("profile_id", "item_id"))
    recs = list(Recommendation.objects.filter(run=run))
    assert {r.profile_id for r in recs} == shop.personalization
    personal = [r for r in recs if r.explanation["fallback"] is None]
    assert personal
    for rec in recs:
        assert (rec.profile_id, rec.item_id) not in purchased
        # The stored parts are the model's exact contributions: they add up to the score.
        assert sum(rec.explanation["contributions"].values()) == pytest.approx(rec.score, abs=1e-5)
    for rec in personal:
        assert rec.explanation["because_of"] and rec.explanation["text"].startswith("Recommended because")
        shares = [b["share"] for b in rec.explanation["because_of"]]
        assert all(0 < share <= 1 for share in shares) and sum(shares) <= 1 + 1e-3
        # Own items listed + the rest = the personal parts, exactly (to rounding).
        personal_parts = rec.explanation["contributions"].get("collaborative", 0) \
            + rec.explanation["contributions"].get("content", 0)
        listed = sum(b["contribution"] for b in rec.explanation["because_of"])
        assert listed + rec.explanation["other_items_contribution"] == pytest.approx(personal_parts, abs=1e-4)


def test_an_empty_store_runs_and_says_what_it_skipped(db):
    run = run_sync()
    assert run.status == RunStatus.SUCCEEDED
    codes = {e["code"] for e in run.errors}
    assert {"not_enough_data", "no_interactions"} <= codes
    assert all(e["severity"] == "warning" for e in run.errors)


@pytest.mark.django_db(transaction=True)  # the statistics are refreshed once the finish commits
def test_a_finished_run_refreshes_the_statistics_of_what_is_served(postgres, fake_model):
    """The run replaced the served tables wholesale; their planner statistics are fresh at
    once, whether or not autovacuum is on, so the recommendations endpoint keeps its plan."""
    shop_population(people=30)

    def analyzed() -> dict:
        with postgres.cursor() as cursor:
            cursor.execute("SELECT relname, analyze_count FROM pg_stat_user_tables WHERE relname IN "
                           "('personalization_recommendation', 'personalization_segmentmembership')")
            return dict(cursor.fetchall())

    before = analyzed()
    run = run_sync()
    assert run.status == RunStatus.SUCCEEDED
    after = analyzed()
    for table in ("personalization_recommendation", "personalization_segmentmembership"):
        assert after[table] > before.get(table, 0), table


def test_segment_definitions_are_paid_for_and_reused_when_the_budget_cannot_pay(shop, fake_model):
    from personalization.models import DpRelease, PrivacyBudget
    from personalization.privacy import EPSILON

    first = run_sync()
    definition = Segmentation.objects.get(run=first).definition
    assert definition.statistic == "segment_definition" and definition.epsilon == pytest.approx(
        EPSILON["segment_definition"], rel=1e-3)
    assert definition.values["space"] == "unit" and len(definition.values["centroids"]) == 4
    spent = PrivacyBudget.objects.get().epsilon_spent
    assert float(spent) == pytest.approx(sum(r.epsilon for r in DpRelease.objects.all()), abs=1e-5)

    second = run_sync()  # the same month: its pace cannot pay a second definition
    assert second.status == RunStatus.SUCCEEDED
    assert Segmentation.objects.get(run=second).definition_id == definition.id
    assert "segment_definition_reused" in {e["code"] for e in second.errors}
    budget = PrivacyBudget.objects.get()
    assert budget.epsilon_spent <= budget.period_epsilon_limit
    names = set(Segment.objects.filter(segmentation__run=second).values_list("name", flat=True))
    assert names == set(Segment.objects.filter(segmentation__run=first).values_list("name", flat=True))
