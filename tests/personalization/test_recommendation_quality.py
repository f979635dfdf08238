"""A run's quality record (beyond-accuracy figures of its served lists) and the /ops/ alerts."""

from __future__ import annotations

import pytest
from personalization_helpers import shop_population

from personalization.services import pipeline
from personalization.services.recommendation_quality import quality_alerts, recommendations_quality

THRESHOLDS = {"min_coverage": 0.1, "max_gini": 0.9, "max_miscalibration": 0.3, "max_segment_gap": 0.5,
              "max_drift": 0.25}
GOOD = {"k": 10, "coverage": 0.4, "gini": 0.6, "novelty": 3.0, "ild": 0.5, "miscalibration": 0.1,
        "segment_coverage": {"gap": 0.1, "by_segment": {}}}


@pytest.mark.django_db
def test_every_run_records_the_quality_of_its_lists():
    shop_population(people=40)
    run = pipeline.pipeline_run_create(params={"chunk_size": 16, "k": 3})
    run = pipeline.pipeline_run_sync(run_id=run.id)
    quality = run.quality
    assert set(quality) == {"k", "coverage", "gini", "novelty", "ild", "miscalibration", "segment_coverage"}
    assert 0 < quality["coverage"] <= 1 and 0 <= quality["gini"] < 1
    assert quality["novelty"] > 0 and 0 <= quality["ild"] <= 1 and 0 <= quality["miscalibration"] <= 1
    assert quality["k"] == 10
    # Only segments with at least ten listed people are reported.
    assert all(0 <= v <= 1 for v in quality["segment_coverage"]["by_segment"].values())


@pytest.mark.django_db
def test_a_run_without_a_model_records_nothing():
    run = pipeline.pipeline_run_create(params={"chunk_size": 16})
    assert recommendations_quality(run_id=run.id) == {}


def test_alerts_name_each_threshold_crossed():
    assert quality_alerts(GOOD, GOOD, THRESHOLDS) == []
    assert quality_alerts({}, GOOD, THRESHOLDS) == []
    bad = {**GOOD, "coverage": 0.05, "gini": 0.95, "miscalibration": 0.4, "segment_coverage": {"gap": 0.6}}
    alerts = quality_alerts(bad, None, THRESHOLDS)
    assert alerts == ["Catalogue coverage 0.050 is below 0.100.", "Gini of exposure 0.950 is above 0.900.",
                      "Popularity miscalibration 0.400 is above 0.300.",
                      "Coverage differs by 0.600 between segments (more than 0.500)."]


def test_a_drift_against_the_previous_run_is_an_alert():
    drifted = {**GOOD, "ild": 0.3}  # 0.5 → 0.3: 40% > 25%
    assert quality_alerts(drifted, GOOD, THRESHOLDS) == [
        "Intra-list diversity moved from 0.500 to 0.300 since the previous run (more than 25%)."]
    assert quality_alerts({**GOOD, "ild": 0.4}, GOOD, THRESHOLDS) == []  # 20%
