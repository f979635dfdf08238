"""The pipeline through a real broker and real worker processes, including a killed worker."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from personalization_helpers import shop_population

from personalization.models import (
    ChunkStatus,
    PipelineChunk,
    PipelineRun,
    ProfileFeatures,
    Recommendation,
    RunStatus,
    SegmentMembership,
    Stage,
)
from personalization.services import pipeline

pytestmark = [pytest.mark.integration, pytest.mark.broker, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# The shortest the settings allow: a message held by a killed worker comes back after it.
VISIBILITY_TIMEOUT = 60
GATE_LOCK = 230_023  # the advisory lock a gated chunk waits for (fake_recommender_worker.py)


def encode(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


@pytest.fixture
def worker(postgres, transactional_db, settings):
    """Start worker processes as tests/integration's `celery_worker` does (same test
    database, same broker): `celery worker` itself, or with `fake=True` one whose
    recommender model is the tests' FakeModel (slowed down by `delay` per chunk)."""
    from django.db import connection

    from cdp.celery import app

    broker_url = os.environ.get("CELERY_BROKER_URL")
    if not broker_url:
        pytest.skip("needs a broker: set CELERY_BROKER_URL=redis://127.0.0.1:6379/0 to run it")
    app.conf.task_always_eager = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.control.purge()
    db = connection.settings_dict
    processes: list[subprocess.Popen] = []

    def start(*, fake: bool = False, delay: float = 0.0, gate_after: int | None = None) -> subprocess.Popen:
        env = {
            **os.environ, "DJANGO_SETTINGS_MODULE": "cdp.settings",
            "CELERY_BROKER_URL": broker_url,
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "TESSERA_MASTER_KEYS": ",".join(encode(k) for k in settings.TESSERA_MASTER_KEYS),
            "TESSERA_INDEX_KEY": encode(settings.TESSERA_INDEX_KEY),
            "TESSERA_LEDGER_KEY": encode(settings.TESSERA_LEDGER_KEY),
            "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT), "TEST_CHUNK_DELAY": str(delay),
        }
        if gate_after is not None:
            env.update({"TEST_CHUNK_GATE_AFTER": str(gate_after), "TEST_CHUNK_GATE_LOCK": str(GATE_LOCK)})
        command = [str(HERE / "fake_recommender_worker.py")] if fake else ["-m", "celery", "-A", "cdp", "worker"]
        process = subprocess.Popen(
            [sys.executable, *command, "--pool", "solo", "-l", "warning",
             "--without-gossip", "--without-mingle", "-n", f"pipeline-{os.getpid()}-{len(processes)}@%h"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(process)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, "the worker exited at start-up"
            if app.control.ping(timeout=0.5):
                return process
        pytest.fail("the worker did not answer a ping within 60 s")

    yield start
    for process in processes:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    app.conf.task_always_eager = True


def wait_for(run_id: int, seconds: float) -> PipelineRun:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run = PipelineRun.objects.get(id=run_id)
        if run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
            return run
        time.sleep(0.2)
    pytest.fail(f"run {run_id} did not finish within {seconds} s (stage {run.stage})")


def assert_complete_and_unique(run: PipelineRun, shop) -> None:
    scored = {}
    for profile_id, rank, item_id in Recommendation.objects.filter(run=run).values_list("profile_id", "rank",
                                                                                         "item_id"):
        scored.setdefault(profile_id, []).append((rank, item_id))
    assert set(scored) == shop.personalization  # nobody missing, nobody extra
    for rows in scored.values():
        ranks = sorted(rank for rank, _ in rows)
        assert ranks == list(range(1, len(ranks) + 1)) and 1 <= len(ranks) <= 10  # no duplicate, no gap
        assert len({item for _, item in rows}) == len(rows)
    assert set(ProfileFeatures.objects.filter(run=run).values_list("profile_id", flat=True)) == shop.analytics
    assert set(SegmentMembership.objects.filter(segmentation__run=run).values_list("profile_id", flat=True)) \
        == shop.analytics


def test_the_pipeline_runs_end_to_end_through_a_real_worker(worker):
    """With the real recommender model."""
    shop = shop_population(people=90)
    process = worker()
    from personalization.tasks import pipeline_run_plan

    run = pipeline.pipeline_run_create(params={"chunk_size": 20, "k": 4})
    pipeline_run_plan.delay(run_id=run.id)
    run = wait_for(run.id, 180)
    assert run.status == RunStatus.SUCCEEDED, run.errors
    assert process.poll() is None
    assert_complete_and_unique(run, shop)
    assert run.model_version.startswith("hybrid-")
    explained = Recommendation.objects.filter(run=run, explanation__fallback=None).first()
    assert explained.explanation["because_of"] and explained.explanation["text"].startswith("Recommended because")
    assert run.counts["dp_releases"]["refused"] == []


def test_killing_the_worker_mid_run_and_starting_another_finishes_the_run(worker):
    """Killed inside a recommendations chunk, deterministically: after two chunks are
    written the next one waits (while RUNNING) on an advisory lock this test holds."""
    from django.db import connection

    shop = shop_population(people=120)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [GATE_LOCK])
    try:
        first = worker(fake=True, gate_after=2)
        from personalization.tasks import pipeline_run_plan

        run = pipeline.pipeline_run_create(params={"chunk_size": 10, "k": 4})
        pipeline_run_plan.delay(run_id=run.id)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                               "AND objid = %s", [GATE_LOCK])
                waiting = cursor.fetchone()[0]
            if waiting:
                break
            time.sleep(0.05)
        else:
            pytest.fail("no recommendations chunk reached the gate")
        chunks = PipelineChunk.objects.filter(run=run, stage=Stage.RECOMMENDATIONS)
        assert chunks.filter(status=ChunkStatus.DONE).count() >= 1  # some were written before
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [GATE_LOCK])
    interrupted = PipelineChunk.objects.filter(run=run, stage=Stage.RECOMMENDATIONS, status=ChunkStatus.RUNNING)
    assert interrupted.exists()
    worker(fake=True)
    run = wait_for(run.id, VISIBILITY_TIMEOUT + 180)
    assert run.status == RunStatus.SUCCEEDED, run.errors
    assert_complete_and_unique(run, shop)
    retried = PipelineChunk.objects.filter(run=run, stage=Stage.RECOMMENDATIONS, attempts__gte=2)
    assert retried.exists()  # the killed chunk really was delivered again
    assert not PipelineChunk.objects.filter(run=run).exclude(status=ChunkStatus.DONE).exists()
