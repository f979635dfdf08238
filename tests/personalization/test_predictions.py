"""The predictions stage, GET /profiles/{id}/predictions, withdrawal, erasure and export."""

from __future__ import annotations

import uuid

import pytest
from personalization_helpers import fake_model_fit, shop_population
from rest_framework.test import APIClient

from cdp.api.services.api_keys import api_key_create
from cdp.services.sources import source_create
from consent.models import AccessLog
from consent.services import consent_set
from personalization.models import Prediction, PredictionModel, ProfileFeatures, RunStatus
from personalization.selectors import profiles_by_prediction
from personalization.services import pipeline
from personalization.services.cleanup import personalization_profile_erase, personalization_profile_export

pytestmark = pytest.mark.django_db
KEYS = {"p_alive", "expected_purchases_90d", "expected_value", "churn_risk", "explanation", "model_version",
        "generated_at"}


@pytest.fixture
def ran(db, monkeypatch):
    monkeypatch.setattr("personalization.services.recommendations.model_fit", fake_model_fit)
    shop = shop_population(people=60)
    run = pipeline.pipeline_run_create(params={"chunk_size": 16})
    run = pipeline.pipeline_run_sync(run_id=run.id)
    assert run.status == RunStatus.SUCCEEDED
    return shop, run


def client(*scopes: str, source_key: str | None = None) -> APIClient:
    _, plaintext = api_key_create(name="test", scopes=list(scopes), source_key=source_key)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return api


def url(profile_id) -> str:
    return f"/api/v1/profiles/{profile_id}/predictions"


def buyers(run) -> set:
    return set(ProfileFeatures.objects.filter(run=run, frequency__gt=0).values_list("profile_id", flat=True))


def test_the_stage_predicts_every_analytics_allowed_buyer_and_no_one_else(ran):
    shop, run = ran

    predicted = set(Prediction.objects.filter(run=run).values_list("profile_id", flat=True))

    assert predicted == buyers(run) and predicted <= shop.analytics
    assert len(predicted) >= 30
    assert "predictions" in run.timings and run.counts["predicted"] == len(predicted)
    model = PredictionModel.objects.get(run=run)
    assert model.transactions["variant"] == "mbgnbd" and model.transactions["customers"] == len(predicted)
    assert sum(model.fit_check["observed"]) == len(predicted)
    for row in Prediction.objects.filter(run=run):
        assert 0.0 <= row.p_alive <= 1.0 and row.expected_purchases_90d >= 0 and row.expected_value >= 0
        assert row.churn_risk in {"low", "medium", "high"}
        assert "last purchase" in row.explanation["text"] or "Bought once" in row.explanation["text"]


def test_running_the_stage_twice_writes_nothing_more(ran):
    from personalization.services.predictions import predictions_compute

    _, run = ran
    before = Prediction.objects.filter(run=run).count()
    assert predictions_compute(run_id=run.id) == 0
    assert Prediction.objects.filter(run=run).count() == before


def test_the_api_serves_the_contract_shape_and_logs_the_read(ran):
    _, run = ran
    person = sorted(buyers(run))[0]

    response = client("predictions:read").get(url(person))

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == KEYS and body["churn_risk"] in {"low", "medium", "high"}
    assert body["explanation"]["text"] and body["model_version"].startswith("clv-mbgnbd")
    assert response["Cache-Control"] == "no-store"
    log = AccessLog.objects.filter(profile_id=person, purpose="analytics").get()
    assert log.fields == ["predictions"]


def test_without_analytics_it_is_403_and_without_purchases_404(ran):
    shop, run = ran
    refused = next(pid for pid in shop.profile_ids if pid not in shop.analytics)
    no_orders = next(pid for pid in shop.analytics if pid not in buyers(run))
    api = client("predictions:read")

    assert api.get(url(refused)).json()["code"] == "consent_required"
    assert api.get(url(refused)).status_code == 403
    assert api.get(url(no_orders)).status_code == 404
    assert api.get(url(uuid.uuid4())).status_code == 404
    assert api.get(url("not-a-uuid")).status_code == 404
    assert not AccessLog.objects.filter(fields=["predictions"]).exists()


def test_scope_and_source_binding(ran):
    _, run = ran
    person = sorted(buyers(run))[0]
    source_create(key="elsewhere", name="Elsewhere", kind="first_party", trust=10)

    assert client("profiles:read").get(url(person)).status_code == 403
    assert client("predictions:read", source_key="elsewhere").get(url(person)).status_code == 404
    assert client("predictions:read", source_key="shop").get(url(person)).status_code == 200


def test_withdrawing_analytics_deletes_the_prediction_and_erasure_too(ran):
    _, run = ran
    first, second = sorted(buyers(run))[:2]

    consent_set(profile_id=first, purpose="analytics", granted=False)
    personalization_profile_erase(profile_id=second)

    assert not Prediction.objects.filter(profile_id__in=[first, second]).exists()
    assert client("predictions:read").get(url(first)).status_code == 403


def test_the_export_holds_the_prediction_with_its_explanation(ran):
    _, run = ran
    person = sorted(buyers(run))[0]

    exported = personalization_profile_export(profile_id=person)["personalization"]["predictions"]

    assert len(exported) == 1 and set(exported[0]) == KEYS
    assert exported[0]["explanation"]["text"]


def test_audience_rules_on_churn_band_and_expected_value(ran):
    _, run = ran
    rows = list(Prediction.objects.filter(run=run).values_list("profile_id", "churn_risk", "expected_value"))
    median = sorted(value for _, _, value in rows)[len(rows) // 2]

    high_value = profiles_by_prediction(min_expected_value=float(median))
    at_risk = profiles_by_prediction(churn_risk=["high"])

    assert high_value == {pid for pid, _, value in rows if value >= median}
    assert at_risk == {pid for pid, band, _ in rows if band == "high"}
    consent_set(profile_id=rows[0][0], purpose="marketing", granted=False)
    assert rows[0][0] not in profiles_by_prediction(purpose="marketing")


def test_the_run_releases_the_prediction_distribution_with_differential_privacy(ran):
    from personalization.models import DpRelease

    _, run = ran
    release = DpRelease.objects.get(statistic="predictions", run=run)

    assert release.epsilon == pytest.approx(0.1) and release.contribution_bound == 3
    assert set(release.values) == {"churn_risk", "expected_value", "repeat_orders"}
    assert set(release.values["churn_risk"]) == {"low", "medium", "high"}
    assert list(release.values["repeat_orders"])[-1] == "7+"
