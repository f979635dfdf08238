"""The fault suite: private Redis and PostgreSQL on their own ports, the product under
gunicorn (DEBUG off), started and stopped by the tests (see harness.py)."""

from __future__ import annotations

import harness
import pytest


@pytest.fixture(scope="module")
def product():
    try:
        product, cleanup = harness.environment()
    except harness.Unavailable as missing:
        pytest.skip(f"the fault suite needs {missing}")
    yield product
    cleanup()
