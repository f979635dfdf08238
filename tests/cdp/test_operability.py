"""Health, readiness, metrics and the access log."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from django.conf import settings as django_settings

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def test_healthz_answers_while_the_process_runs(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_reports_each_dependency(client, settings):
    settings.TASKS_IN_PROCESS = True
    body = client.get("/readyz").json()
    assert body.pop("cache") in ("ok", "in-process")  # Redis when one is configured (CI), else memory
    assert body == {"status": "ok", "database": "ok", "migrations": "ok", "broker": "in-process"}


def test_readyz_answers_503_naming_an_unreachable_broker(client, settings):
    settings.TASKS_IN_PROCESS = False
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["broker"] == "unreachable" and response.json()["failed"] == ["broker"]


def test_readyz_answers_503_naming_an_unreachable_cache(client, settings, monkeypatch):
    from cdp.core import cache as cache_module

    monkeypatch.setattr(cache_module, "_breakers", {})
    settings.TASKS_IN_PROCESS = True
    settings.CACHES = {"default": {"BACKEND": "cdp.core.cache.ResilientRedisCache",
                                   "LOCATION": "redis://127.0.0.1:1/0"}}  # nothing listens on port 1
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["cache"] == "unreachable" and response.json()["failed"] == ["cache"]


def test_metrics_counts_requests_by_route(client):
    client.get("/healthz")
    client.get("/healthz")
    text = client.get("/metrics").content.decode()
    assert "# TYPE tessera_http_requests_total counter" in text
    line = next(line for line in text.splitlines()
                if line.startswith("tessera_http_requests_total") and 'route="/healthz"' in line)
    assert float(line.rsplit(" ", 1)[1]) >= 2
    assert "tessera_http_request_seconds_bucket" in text


def test_access_log_is_json_with_the_route_not_the_path(client, caplog):
    caplog.set_level(logging.INFO, logger="tessera.access")
    client.get("/api/schema/?email=leak%40example.com")
    record = next(r for r in caplog.records if r.name == "tessera.access")
    from cdp.core.observability import JsonFormatter

    entry = json.loads(JsonFormatter().format(record))
    assert entry["route"] == "/api/schema/" and entry["status"] == 200 and entry["method"] == "GET"
    assert "leak" not in json.dumps(entry)
    assert set(entry) >= {"time", "level", "request_id", "duration_ms"}


def test_task_metrics_are_recorded(settings, source_factory):
    from cdp.core.observability import REGISTRY
    from cdp.tasks import data_keys_rotate

    before = REGISTRY.get_sample_value("tessera_tasks_total", {"task": "cdp.data_keys_rotate", "state": "SUCCESS"})
    data_keys_rotate.delay()
    after = REGISTRY.get_sample_value("tessera_tasks_total", {"task": "cdp.data_keys_rotate", "state": "SUCCESS"})
    assert (after or 0) == (before or 0) + 1


def test_exception_log_lines_never_carry_the_message(caplog):
    from cdp.core.observability import JsonFormatter

    try:
        raise ValueError("secret@example.com is not valid")
    except ValueError:
        logging.getLogger("tessera.test").exception("failed")
    entry = json.loads(JsonFormatter().format(caplog.records[-1]))
    assert entry["exception"] == "ValueError" and "secret" not in json.dumps(entry)


def test_the_readme_documents_port_as_dev_reads_it():
    """Issue 17, finding 7: PORT was undocumented."""
    assert "${PORT:-8000}" in (ROOT / "dev").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "PORT=8080 ./dev run" in readme


def test_the_readme_says_how_to_run_a_worker_and_beat_outside_docker():
    """Issue 17, finding 8: the README never said how to run a Celery worker and beat outside Docker."""
    readme = (ROOT / "README.md").read_text()
    commands = [line.split("#")[0].split() for line in readme.splitlines() if "celery -A cdp" in line]
    assert any(c[c.index("-A") + 2] == "worker" for c in commands if "-A" in c)
    assert any(c[c.index("-A") + 2] == "beat" for c in commands if "-A" in c)
    assert django_settings.CELERY_BEAT_SCHEDULE  # what beat runs


def test_dev_run_drops_the_run_id_that_run_pipeline_prints_last():
    """Issue 17, finding 7: `./dev run` printed a stray `1` (the pipeline run's id) after the pipeline."""
    dev = (ROOT / "dev").read_text()
    [line] = [line for line in dev.splitlines() if "run_pipeline --sync" in line]
    assert "sed '$d'" in line
