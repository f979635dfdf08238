"""The operator dashboard: who may open it, pipeline runs, DP segment charts, merge review,
webhook failures and ingestion errors."""

# ruff: noqa: F811 - pytest fixtures are imported from web_helpers and named as arguments

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.utils import timezone
from web_helpers import (  # noqa: F401
    _fresh_cache,
    ada,
    bob,
    officer,
    officer_client,
    operator,
    operator_client,
    shop,
    sign_in,
    staff_user,
)

from cdp.models import ConflictStatus, Merge, MergeConflict, Profile, ProfileStatus
from consent.models import AccessLog

pytestmark = pytest.mark.django_db

PAGES = ["/ops/", "/ops/merges/", "/ops/webhooks/", "/ops/ingestion/"]


def test_anonymous_visitors_are_sent_to_the_staff_log_in():
    for path in PAGES:
        response = Client().get(path)
        assert response.status_code == 302 and response["Location"].startswith("/staff/login/?next="), path


def test_staff_without_the_operator_role_cannot_open_the_dashboard(officer_client, staff_user, ada, bob):
    from cdp.services.merges import profile_merge

    merge = profile_merge(survivor_id=ada.profile_id, absorbed_id=bob.profile_id)
    conflict = MergeConflict.objects.create(profile_id=ada.profile_id, other_profiles=[], reason="merge_blocked")
    plain = Client()
    plain.force_login(staff_user("plain", None))
    for client in (officer_client, plain):
        for path in PAGES:
            response = client.get(path)
            assert response.status_code == 403 and b"operators only" in response.content, path
        assert client.post(f"/ops/merges/{merge.id}/unmerge/").status_code == 403
        assert client.post(f"/ops/merges/conflicts/{conflict.id}/approve/").status_code == 403
    merge.refresh_from_db()
    conflict.refresh_from_db()
    assert merge.undone_at is None and conflict.status == ConflictStatus.OPEN


def test_operators_open_every_page_even_with_nothing_to_show(operator_client):
    for path in PAGES:
        assert operator_client.get(path).status_code == 200, path
    overview = operator_client.get("/ops/").content.decode()
    assert "No pipeline run yet" in overview and "No segmentation yet" in overview
    assert 'id="evaluation-empty"' in overview  # the explicit gap: no stored recommender evaluation


@pytest.fixture
def segmented(ada, bob):
    """A succeeded run with a segmentation of two segments and its real DP releases."""
    from personalization.models import (
        PipelineRun,
        RunStatus,
        Segment,
        Segmentation,
        SegmentMembership,
        Stage,
    )
    from personalization.privacy import segment_average_spend_release, segment_sizes_release, segment_spend_release

    run = PipelineRun.objects.create(status=RunStatus.SUCCEEDED, stage=Stage.DONE, active=None,
                                     started_at=timezone.now(), finished_at=timezone.now(),
                                     counts={"profiles": 2, "featured": 1}, timings={"total": 3.2})
    segmentation = Segmentation.objects.create(run=run, k=2, seed=42, model={})
    big = Segment.objects.create(segmentation=segmentation, index=0, name="Loyal big spenders", centroid={})
    Segment.objects.create(segmentation=segmentation, index=1, name="New browsers", centroid={})
    SegmentMembership.objects.create(segmentation=segmentation, segment=big, profile_id=ada.profile_id,
                                     r_score=5, f_score=4, m_score=5)
    sizes = segment_sizes_release(segmentation=segmentation, run_id=run.id)
    totals = segment_spend_release(segmentation=segmentation, run_id=run.id)
    segment_average_spend_release(sizes=sizes, totals=totals)
    return run


def test_pipeline_runs_and_segment_charts_with_error_bars(operator_client, segmented):
    html = operator_client.get("/ops/").content.decode()
    assert f"#{segmented.id}" in html and "Succeeded" in html and 'role="progressbar"' in html
    assert "Loyal big spenders" in html and "New browsers" in html
    assert html.count('<svg class="chart"') == 2  # sizes, average spend
    assert "Segment sizes (differentially private)" in html and "Average spend per segment" in html
    assert 'class="errorbar"' in html and " ± " in html
    assert "Silhouette by number of segments" not in html  # no quality figure computed on the customers


def test_a_failed_run_shows_why(operator_client):
    from personalization.models import PipelineRun, RunStatus, Stage

    PipelineRun.objects.create(status=RunStatus.FAILED, stage=Stage.RECOMMENDER_FIT, active=None,
                               errors=[{"stage": "recommender_fit", "chunk": None, "code": "recommender_unavailable",
                                        "message": "The recommender model package is not installed."}])
    html = operator_client.get("/ops/").content.decode()
    assert "Failed" in html and "The recommender could not run" in html and "Recommender fit" in html
    # The code stays for support, as a tooltip only: never in the page's text.
    assert 'title="Code for support: recommender_unavailable"' in html
    assert "recommender_unavailable" not in re.sub(r"<[^>]+>", " ", html)


def test_merge_review_approves_a_refusal_and_undoes_a_merge(operator_client, operator, ada, bob):
    from cdp.services.merges import profile_merge

    merge = profile_merge(survivor_id=ada.profile_id, absorbed_id=bob.profile_id)
    conflict = MergeConflict.objects.create(profile_id=ada.profile_id, other_profiles=[str(bob.profile_id)],
                                            reason="conflicting_source_ids")
    page = operator_client.get("/ops/merges/").content.decode()
    assert str(conflict.profile_id) in page and "Conflicting source ids" in page and str(merge.absorbed_id) in page

    operator_client.post(f"/ops/merges/conflicts/{conflict.id}/approve/")
    conflict.refresh_from_db()
    assert conflict.status == ConflictStatus.RESOLVED and conflict.resolved_at is not None
    again = operator_client.post(f"/ops/merges/conflicts/{conflict.id}/approve/", follow=True)
    assert b"already reviewed" in again.content

    operator_client.post(f"/ops/merges/{merge.id}/unmerge/")
    merge.refresh_from_db()
    assert merge.undone_at is not None
    assert Profile.objects.get(id=bob.profile_id).status == ProfileStatus.ACTIVE
    twice = operator_client.post(f"/ops/merges/{merge.id}/unmerge/", follow=True)
    assert b"already undone" in twice.content
    actions = set(AccessLog.objects.filter(actor=f"staff:{operator.pk}").values_list("purpose", flat=True))
    assert actions == {"merge_conflict_approved", "merge.undone"}  # staff named by id, as in the admin
    assert Merge.objects.filter(undone_at__isnull=True).count() == 0


def test_webhook_failures_are_listed(operator_client):
    from cdp.core.models import OutboxMessage
    from cdp.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookSubscription

    subscription = WebhookSubscription.objects.create(url="https://hooks.example.com/tessera",
                                                      events=["consent.changed"], secret_cipher=b"sealed")
    message = OutboxMessage.objects.create(topic="consent.changed", payload={"purpose": "marketing"})
    delivery = WebhookDelivery.objects.create(subscription=subscription, message=message,
                                              status=DeliveryStatus.FAILED, attempts=8, last_status_code=503)
    WebhookAttempt.objects.create(delivery=delivery, number=8, outcome="failed", started_at=timezone.now(),
                                  status_code=503, error="HTTPError", duration_ms=120)
    html = operator_client.get("/ops/webhooks/").content.decode()
    assert "Failed: 1" in html and "hooks.example.com" in html and "503" in html and "HTTPError" in html


def test_ingestion_errors_are_listed_without_their_content(operator_client, shop):
    from cdp.segment.models import IngestionError

    IngestionError.objects.create(source=shop, message_type="track", codes=["invalid_timestamp"],
                                  message=b"ciphertext-not-shown")
    html = operator_client.get("/ops/ingestion/").content.decode()
    assert "Invalid timestamp" in html and "Track" in html and "ciphertext" not in html


def test_the_stored_recommender_evaluation_is_charted(operator_client):
    from personalization.services.evaluations import recommender_evaluation_save

    def model(*per_seed: float) -> dict:
        runs = [{"seed": seed, "ndcg@10": value} for seed, value in zip((42, 1), per_seed, strict=True)]
        return {"mean": {"ndcg@10": sum(per_seed) / len(per_seed)}, "per_seed": runs, "fit_seconds": 1.0}

    recommender_evaluation_save({
        "dataset": "movielens-100k", "k": 10, "seeds": [42, 1],
        "models": {"tessera": model(0.33, 0.31), "ease": model(0.32, 0.30), "als": model(0.22, 0.2),
                   "popularity": model(0.15, 0.15)},
        "ablation": {"collaborative": model(0.3, 0.29), "content": model(0.1, 0.12), "popularity": model(0.15, 0.15)},
        "summary": {"tessera_beats_als_and_ease_on_every_seed": True}})
    html = operator_client.get("/ops/").content.decode()
    assert 'id="evaluation-empty"' not in html and "Tessera beats ALS and EASE on every seed" in html
    chart = html[html.index('<div id="evaluation-chart">'):html.index('id="evaluation-table"')]
    assert 'aria-labelledby="recommender-ndcg-t recommender-ndcg-d"' in chart
    assert "0.3200 ± 0.0100" in chart and "content alone" in chart  # tessera: mean 0.32, spread 0.01
    table = html[html.index('id="evaluation-ndcg"'):]
    assert "<th scope=\"row\">als</th><td class=\"num\">0.2100</td><td class=\"num\">0.2000</td>" in table


def test_the_stored_evaluation_shows_the_paired_difference(operator_client):
    from personalization.services.evaluations import recommender_evaluation_save

    model = {"mean": {"ndcg@10": 0.4}, "per_seed": [{"seed": 42, "ndcg@10": 0.4}], "fit_seconds": 1.0}
    recommender_evaluation_save({
        "dataset": "movielens-100k", "k": 10, "seeds": [42, 1], "models": {"tessera": model, "ease": model},
        "paired": {"baseline": "ease", "ndcg@10": {"mean_diff": 0.0228, "ci95": [0.0154, 0.0302]}}})
    html = operator_client.get("/ops/").content.decode()
    assert "Tessera − ease (the best tuned baseline), ndcg@10 paired by seed: 0.0228 (95% CI 0.0154 to 0.0302)." \
        in html
