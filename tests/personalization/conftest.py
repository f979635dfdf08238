"""Fixtures of the real-time tests (test_realtime*.py)."""

from __future__ import annotations

import pytest
from personalization_helpers import shop_population

from cdp.services.sources import source_create
from personalization.services import pipeline


@pytest.fixture
def refresh_in_process(settings):
    """Tasks run in-process here: the events' refresh is opt-in in that mode."""
    settings.TESSERA_REALTIME_IN_PROCESS = True


@pytest.fixture
def served(db):
    """A shop whose first-party source also takes Segment calls, after one pipeline run
    with the real recommender."""
    source, write_key = source_create(key="shop", name="Shop", kind="first_party", trust=80)
    population = shop_population(people=40, source_key="shop")
    run = pipeline.pipeline_run_create(params={"chunk_size": 15, "k": 3})
    pipeline.pipeline_run_sync(run_id=run.id)
    population.write_key = write_key
    population.run_id = run.id
    return population
