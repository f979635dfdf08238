"""A real Celery worker whose recommender model is the tests' FakeModel.

For the worker tests that are about the pipeline (fan-out, redelivery, idempotency), not
about the model. TEST_CHUNK_DELAY slows each recommendations chunk so a test can kill the
worker in the middle of one.
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
    _score = recommendations._score

    def _slow_score(*args, **kwargs):
        time.sleep(DELAY)
        return _score(*args, **kwargs)

    recommendations._score = _slow_score

if __name__ == "__main__":
    sys.argv = ["celery", "-A", "cdp", "worker", *sys.argv[1:]]
    sys.exit(main())
