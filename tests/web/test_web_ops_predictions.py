"""/ops/: churn bands and value brackets (DP releases) and the model's calibration plot."""

# ruff: noqa: F811 - pytest fixtures are imported from web_helpers and named as arguments

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.utils import timezone
from web_helpers import _fresh_cache, operator, operator_client, staff_user  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def predicted():
    from personalization.models import PipelineRun, Prediction, PredictionModel, RunStatus, Stage
    from personalization.predictive.releases import predictions_release

    run = PipelineRun.objects.create(status=RunStatus.SUCCEEDED, stage=Stage.DONE, active=None,
                                     started_at=timezone.now(), finished_at=timezone.now())
    PredictionModel.objects.create(run=run, model_version="clv-mbgnbd-gg/run-1", transactions={}, spend={},
                                   fit_seconds=0.4, fit_check={"expected": [30, 10, 5, 2, 1, 1, 0.5, 0.5],
                                                               "observed": [31, 9, 5, 2, 1, 1, 1, 0]})
    for i, band in enumerate(["low", "medium", "high"] * 4):
        Prediction.objects.create(run=run, profile_id=uuid.uuid4(), p_alive=0.5, expected_purchases_90d=1.0,
                                  expected_value=Decimal(20 * i), churn_risk=band, model_version="v",
                                  explanation={"text": "t", "orders": 1 + i % 3}, created_at=timezone.now())
    predictions_release(run_id=run.id)
    return run


def test_the_dashboard_shows_released_bands_and_the_calibration_plot(operator_client, predicted):
    html = operator_client.get("/ops/").content.decode()

    assert "Customers by churn risk (differentially private)" in html
    assert "Customers by expected 90-day value (differentially private)" in html
    assert "Model fit: share of customers by repeat orders" in html
    assert 'id="calibration-table"' in html and "7+" in html
    assert "clv-mbgnbd-gg/run-1" in html and "ε = 0.100" in html


def test_without_predictions_the_dashboard_says_so(operator_client):
    assert "No predictions yet" in operator_client.get("/ops/").content.decode()
