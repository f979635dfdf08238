"""run_pipeline and evaluate_segmentation: output, exit codes, failures in one sentence."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from personalization_helpers import fake_model_fit, shop_population

from personalization.models import PipelineRun, RunStatus

ROOT = Path(__file__).resolve().parents[2]
RETAIL = Path("/work/shared/data/online-retail-uci/by-day")


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def run(*args, terminal: bool = False) -> tuple[str, str]:
    out, err = StringIO(), Terminal() if terminal else StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_run_pipeline_in_process_prints_the_run_id_last(monkeypatch):
    monkeypatch.setattr("personalization.services.recommendations.model_fit", fake_model_fit)
    shop_population(people=30)
    out, _ = run("run_pipeline", "--sync", "--chunk-size", "10")
    run_id = int(out.strip().splitlines()[-1])
    assert PipelineRun.objects.get(id=run_id).status == RunStatus.SUCCEEDED
    assert "succeeded" in out


@pytest.mark.django_db
def test_run_pipeline_says_how_many_it_skipped_for_want_of_consent_and_why(monkeypatch):
    monkeypatch.setattr("personalization.services.recommendations.model_fit", fake_model_fit)
    shop_population(people=30)  # every 5th person without analytics, every 4th without personalization
    out, err = run("run_pipeline", "--sync", "--chunk-size", "10", terminal=True)
    assert "features: skipped 6 of 30 people: no `analytics` consent." in err
    assert "segments: skipped 6 of 30 people: no `analytics` consent." in err
    assert "recommendations: skipped 8 of 30 people: no `personalization` consent." in err
    assert "--consent PURPOSES --evidence TEXT" in err
    assert "skipped" not in out  # the summary schedulers log holds no counts of people
    assert out.strip().splitlines()[-1].isdigit()  # still the run id last


@pytest.mark.django_db
def test_run_pipeline_says_when_nobody_could_be_processed(monkeypatch):
    monkeypatch.setattr("personalization.services.recommendations.model_fit", fake_model_fit)
    shop_population(people=12, analytics_every=1, personalization_every=1)
    _, err = run("run_pipeline", "--sync", terminal=True)
    assert "features: skipped 12 of 12 people: no `analytics` consent." in err


@pytest.mark.django_db
def test_run_pipeline_writes_no_count_of_people_when_stderr_is_a_log(monkeypatch):
    """Logs leave the host (the DP boundary): off a terminal, which stages and why, not how many."""
    monkeypatch.setattr("personalization.services.recommendations.model_fit", fake_model_fit)
    shop_population(people=30)
    out, err = run("run_pipeline", "--sync", "--chunk-size", "10")
    assert "features: skipped some people: no `analytics` consent (how many: run this on a terminal" in err
    assert "recommendations: skipped some people: no `personalization` consent" in err
    skips = [line for line in err.splitlines() if "skipped" in line]
    assert len(skips) == 3 and not any(ch.isdigit() for line in skips for ch in line)


def test_skip_counts_are_written_with_thousands_separators():
    from personalization.management.commands.run_pipeline import consent_skips

    lines = consent_skips({"profiles": 5000, "featured": 3766, "featured_skipped_no_consent": 1234,
                           "scored": 5000, "scored_skipped_no_consent": 0}, exact=True)
    assert lines[0] == "features: skipped 1,234 of 5,000 people: no `analytics` consent."
    assert len(lines) == 2  # nobody skipped by recommendations: no line; then the hint


@pytest.mark.django_db
def test_run_pipeline_failure_is_one_sentence(monkeypatch):
    def broken(data, *, seed):
        raise ValueError("boom")

    monkeypatch.setattr("personalization.services.recommendations.model_fit", broken)
    shop_population(people=30)
    with pytest.raises(CommandError, match=r"^Pipeline run \d+ failed at recommender_fit: "):
        run("run_pipeline", "--sync")


@pytest.mark.django_db
def test_run_pipeline_fails_clearly_when_no_worker_answers(settings, monkeypatch):
    from cdp.celery import app

    settings.TASKS_IN_PROCESS = False
    monkeypatch.setattr(app.control, "ping", lambda timeout: [])
    with pytest.raises(CommandError, match="No Celery worker answered within 1 seconds"):
        run("run_pipeline", "--timeout", "1")
    assert not PipelineRun.objects.exists()


@pytest.fixture(scope="module")
def retail_sample(tmp_path_factory) -> Path:
    if not RETAIL.is_dir():
        pytest.skip("the UCI Online Retail data is not at /work/shared/data")
    directory = tmp_path_factory.mktemp("retail")
    for file in sorted(RETAIL.glob("*.csv"))[:40]:
        shutil.copy(file, directory / file.name)
    return directory


def test_evaluate_segmentation_prints_one_json_document(retail_sample):
    out, _ = run("evaluate_segmentation", "--format", "transactions", "--path", str(retail_sample),
                 "--seeds", "42,1,2")
    result = json.loads(out.strip().splitlines()[-1])
    assert {"k", "silhouette", "davies_bouldin", "sizes", "stability_ari", "segments"} <= set(result)
    assert 2 <= result["k"] <= 8 and -1 <= result["silhouette"] <= 1 and result["davies_bouldin"] > 0
    assert sum(result["sizes"]) == result["customers"] and len(result["segments"]) == result["k"]
    assert 0 <= result["stability_ari"] <= 1 and result["k"] >= 3  # the useful minimum
    assert result["by_k"][str(result["k"])]["stability_ari"] == result["stability_ari"]
    segment = result["segments"][0]
    assert {"name", "size", "centroid", "rfm"} <= set(segment) and "monetary" in segment["centroid"]
    assert set(segment["rfm"]) == {"share", "recency_days", "frequency", "monetary"}
    private = result["private"]
    assert private["epsilon"] == pytest.approx(0.4) and private["k"] == result["k"]
    assert sum(private["sizes"]) == result["customers"] and len(private["segments"]) == result["k"]
    assert -1 <= private["ari_vs_non_private"] <= 1 and all("rfm" in s for s in private["segments"])


def test_evaluate_segmentation_needs_no_database_and_fails_in_one_sentence(tmp_path):
    env = {"DJANGO_SETTINGS_MODULE": "cdp.settings", "DATABASE_URL": f"sqlite:///{tmp_path}/none.sqlite3",
           "TESSERA_VAR_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    missing = subprocess.run([sys.executable, "manage.py", "evaluate_segmentation", "--format", "transactions",
                              "--path", str(tmp_path / "nothing")], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines()[-1].startswith("CommandError: ")
    assert not (tmp_path / "none.sqlite3").exists()  # it never opened a database
