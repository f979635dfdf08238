"""Shared fixtures and the skip policy.

Tests that need PostgreSQL, a broker or a browser skip with a reason on a bare machine.
With TESSERA_REQUIRE_ALL_TESTS=1 (set by .ci/run) a skip is a failure: in CI every
service is present and nothing may silently not run.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_ALL = os.environ.get("TESSERA_REQUIRE_ALL_TESTS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"Skipped in CI, where every service must be present: {reason}"


@pytest.fixture(autouse=True)
def _references_intact(request):
    """After every test that used the database: no row names a missing target.

    The high-volume tables have no database foreign keys (cdp.models), so this is what
    would catch code that leaves an event, identity or record pointing at nothing.
    """
    if not (request.node.get_closest_marker("django_db") or "_django_db_helper" in request.fixturenames):
        yield
        return
    # Set up the database now, so its teardown (rollback or flush) runs after this check.
    request.getfixturevalue("_django_db_helper")
    yield
    from django.db import connection

    if connection.connection is None or connection.needs_rollback:
        return  # a test that broke its transaction on purpose left nothing to check
    from cdp.integrity import dangling_references

    assert dangling_references() == {}, "rows name a missing target (see cdp.integrity)"


@pytest.fixture
def postgres(db):
    """Use in tests that need PostgreSQL's behaviour (locks, pg_dump, triggers)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://... to run it")
    return connection


@pytest.fixture
def source_factory(db):
    from cdp.services.sources import source_create

    counter = {"n": 0}

    def make(key: str | None = None, *, kind: str = "first_party", trust: int = 50):
        counter["n"] += 1
        source, _ = source_create(key=key or f"src{counter['n']}", name="Test source", kind=kind, trust=trust)
        return source

    return make
