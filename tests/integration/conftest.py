"""A real Celery worker, started as a separate process against the test database."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery._state import _set_task_join_will_block

ROOT = Path(__file__).resolve().parents[2]


def encode(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


@pytest.fixture
def broker_url():
    url = os.environ.get("CELERY_BROKER_URL")
    if not url:
        pytest.skip("needs a broker: set CELERY_BROKER_URL=redis://127.0.0.1:6379/0 to run it")
    return url


@pytest.fixture
def celery_worker(postgres, broker_url, settings, transactional_db):
    """Start `celery worker` on the test database; yields a function to restart it."""
    from django.db import connection

    from cdp.celery import app

    db = connection.settings_dict
    database_url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    app.conf.task_always_eager = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    processes: list[subprocess.Popen] = []

    def start(master_keys: list[bytes] | None = None) -> subprocess.Popen:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "cdp.settings",
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker_url,
            "TESSERA_MASTER_KEYS": ",".join(encode(k) for k in (master_keys or settings.TESSERA_MASTER_KEYS)),
            "TESSERA_INDEX_KEY": encode(settings.TESSERA_INDEX_KEY),
            "TESSERA_LEDGER_KEY": encode(settings.TESSERA_LEDGER_KEY),
            "OPENBLAS_NUM_THREADS": "1",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "cdp", "worker", "--pool", "solo", "-l", "warning",
             "--without-gossip", "--without-mingle", "-n", f"test-{os.getpid()}-{len(processes)}@%h"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        processes.append(process)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = process.stdout.read().decode(errors="replace")
                pytest.fail(f"celery worker exited at start-up:\n{output[-3000:]}")
            if app.control.ping(timeout=0.5):
                return process
        pytest.fail("celery worker did not answer a ping within 60 s")

    # Eager tasks run from several threads in earlier tests can leave Celery's process-wide
    # "inside a task" flag set (its save/restore is not thread-safe); this test process is
    # not a task, so joining results is allowed.
    _set_task_join_will_block(False)
    app.control.purge()
    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    app.conf.task_always_eager = True
