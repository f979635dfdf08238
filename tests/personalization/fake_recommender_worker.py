"""A real Celery worker whose recommender model is the tests' FakeModel.

For the worker tests that are about the pipeline (fan-out, redelivery, idempotency), not
about the model. TEST_CHUNK_DELAY slows each recommendations chunk. TEST_CHUNK_GATE_AFTER=N
makes every recommendations chunk after the first N wait, while scoring, for the
PostgreSQL advisory lock TEST_CHUNK_GATE_LOCK that the test holds: the test then knows a
chunk is running (its backend waits on that lock in pg_locks) and kills the worker
inside it, with no race against the chunk finishing.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")

import django  # noqa: E402

django.setup()

import personalization_helpers  # noqa: E402
from celery.bin.celery import main  # noqa: E402

from personalization.services import recommendations  # noqa: E402

recommendations.model_fit = personalization_helpers.fake_model_fit
DELAY = float(os.environ.get("TEST_CHUNK_DELAY", "0"))
if DELAY:
    _score = recommendations.score_rows

    def _slow_score(*args, **kwargs):
        time.sleep(DELAY)
        return _score(*args, **kwargs)

    recommendations.score_rows = _slow_score

GATE_AFTER = os.environ.get("TEST_CHUNK_GATE_AFTER")
if GATE_AFTER is not None:
    _gated = recommendations.score_rows
    _calls = {"n": 0}

    def _gated_score(*args, **kwargs):
        from django.db import connection

        _calls["n"] += 1
        if _calls["n"] > int(GATE_AFTER):
            with connection.cursor() as cursor:  # blocks while the test holds the lock
                cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [int(os.environ["TEST_CHUNK_GATE_LOCK"])])
        return _gated(*args, **kwargs)

    recommendations.score_rows = _gated_score

if __name__ == "__main__":
    sys.argv = ["celery", "-A", "cdp", "worker", *sys.argv[1:]]
    sys.exit(main())
