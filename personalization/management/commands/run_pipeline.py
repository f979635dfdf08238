"""`run_pipeline`: features → segments → recommendations → DP releases, with a progress bar.

Through the broker when one is configured (waits for the workers; fails clearly when no
worker answers within --timeout), in this process with --sync or with no broker.
The run id is the last line on standard output.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import CommandError

from cdp.celery import app
from cdp.management.base import TesseraCommand
from personalization.models import RunStatus
from personalization.services.pipeline import (
    pipeline_progress,
    pipeline_run_create,
    pipeline_run_fail,
    pipeline_run_sync,
)
from personalization.tasks import pipeline_run_plan

POLL_SECONDS = 0.5


class Command(TesseraCommand):
    help = "Run the personalization pipeline (features, segments, recommendations, DP releases)."

    def add_arguments(self, parser):
        parser.add_argument("--sync", action="store_true", help="Run in this process, not through the broker.")
        parser.add_argument("--timeout", type=float, default=60.0,
                            help="Seconds to wait for a worker to answer and pick the run up (default 60).")
        parser.add_argument("--chunk-size", type=int, default=None, help="Profiles per task (default 2000).")
        parser.add_argument("--seed", type=int, default=None, help="Random seed of the fits (default 42).")

    def handle(self, *args, sync: bool, timeout: float, chunk_size: int | None, seed: int | None, **options):
        if timeout <= 0:
            raise CommandError("--timeout must be a positive number of seconds.")
        if chunk_size is not None and chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1.")
        params = {k: v for k, v in {"chunk_size": chunk_size, "seed": seed}.items() if v is not None}
        in_process = sync or settings.TASKS_IN_PROCESS
        if not in_process:
            self._wait_for_worker(timeout)
        run = pipeline_run_create(trigger="command", params=params)
        if in_process:
            self._run_here(run.id)
        else:
            self._run_in_workers(run.id, timeout)
        progress = pipeline_progress(run_id=run.id)
        if progress["status"] != RunStatus.SUCCEEDED:
            failure = next((e for e in reversed(progress["errors"]) if e.get("severity") != "warning"), {})
            raise CommandError(f"Pipeline run {run.id} failed at {failure.get('stage', progress['stage'])}: "
                               f"{failure.get('message', 'see the run for details')}")
        self.stdout.write(_summary(progress))
        for line in consent_skips(progress["counts"], exact=self.stderr.isatty()):
            self.stderr.write(line)
        self.stdout.write(str(run.id))

    def _run_here(self, run_id: int) -> None:
        with self.progress(total=None, unit="step", desc="Pipeline") as bar:
            def on_progress(n: int) -> None:
                progress = pipeline_progress(run_id=run_id)
                bar.total = progress["total"]
                bar.set_postfix_str(progress["stage"], refresh=False)
                bar.update(n)

            try:
                pipeline_run_sync(run_id=run_id, on_progress=on_progress)
            except Exception:
                return  # the run is marked failed with the reason; reported by handle()

    def _wait_for_worker(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if app.control.ping(timeout=1.0):
                    return
            except OSError:
                time.sleep(1.0)  # the broker itself is down: keep trying until the deadline
        raise CommandError(f"No Celery worker answered within {timeout:g} seconds; "
                           "start one with `celery -A cdp worker` or use --sync.")

    def _run_in_workers(self, run_id: int, timeout: float) -> None:
        pipeline_run_plan.delay(run_id=run_id)
        picked_up_by = time.monotonic() + timeout
        done = 0
        with self.progress(total=None, unit="step", desc="Pipeline") as bar:
            while True:
                progress = pipeline_progress(run_id=run_id)
                if progress["status"] == RunStatus.PENDING and time.monotonic() > picked_up_by:
                    pipeline_run_fail(run_id=run_id, stage="planned", code="not_picked_up",
                                      message=f"No worker picked the run up within {timeout:g} seconds.")
                    return
                if bar.total != progress["total"]:
                    bar.total = progress["total"]
                bar.set_postfix_str(progress["stage"], refresh=False)
                bar.update(progress["done"] - done)
                done = progress["done"]
                if progress["status"] in (RunStatus.SUCCEEDED, RunStatus.FAILED):
                    return
                time.sleep(POLL_SECONDS)


def _summary(progress: dict) -> str:
    # No people counts: this line often ends up in a scheduler's log, and logs leave the host.
    # The run's exact counts are internal, in its admin record.
    timings = ", ".join(f"{stage} {seconds:.1f}s" for stage, seconds in progress["timings"].items())
    return (f"Pipeline run {progress['id']} succeeded: {progress['counts'].get('segments', 0)} segments; "
            f"{timings}. Its internal counts are in the admin's record of the run.")


# What each counted stage needs: the policy each stage's service asks (consent.policy.allowed).
STAGE_PURPOSES = {"featured": ("features", "analytics"), "segmented": ("segments", "analytics"),
                  "scored": ("recommendations", "personalization")}
# The predictions stage reads the features stage's rows: its people are the features' people.


def consent_skips(counts: dict, *, exact: bool) -> list[str]:
    """Which stages left people out for want of consent, and which purpose each needs. On a
    terminal (`exact`), how many: "features: skipped 1,234 of 5,000 people: no `analytics`
    consent." Whoever runs this command has database access, so is inside the DP boundary
    (README, "Privacy"), as is the run's admin record that holds the same counts. Otherwise
    stderr is a log, and logs leave the host: "some" or "every" instead of numbers."""
    lines = []
    for name, (stage, purpose) in STAGE_PURPOSES.items():
        skipped, done = counts.get(f"{name}_skipped_no_consent") or 0, counts.get(name) or 0
        if skipped and exact:
            total = max(counts.get("profiles") or 0, skipped + done)
            lines.append(f"{stage}: skipped {skipped:,} of {total:,} people: no `{purpose}` consent.")
        elif skipped:
            who = "everyone" if not done else "some people"
            lines.append(f"{stage}: skipped {who}: no `{purpose}` consent (how many: run this on a terminal, "
                         "or see the admin's record of the run).")
    if lines:
        lines.append("Consent is recorded per person (PUT /api/v1/profiles/{id}/consents, POST /api/v1/consents/batch, "
                     "the preference center) or, for people you import with a stated basis, by the importers' "
                     "--consent PURPOSES --evidence TEXT.")
    return lines
