"""Start-up configuration: bad or missing values stop with one sentence, no traceback."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def run_manage(tmp_path, *args, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS",
                         "TESSERA_MASTER_KEYS", "TESSERA_INDEX_KEY", "TESSERA_LEDGER_KEY",
                         "TESSERA_CHECKPOINT_SIGNING_KEY", "TESSERA_CHECKPOINT_PUBLIC_KEY",
                         "DJANGO_SETTINGS_MODULE"}}
    base.update({"TESSERA_VAR_DIR": str(tmp_path)}, **env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=base, capture_output=True,
                          text=True, timeout=120)


def production_env(**overrides) -> dict:
    env = {"DEBUG": "false", "SECRET_KEY": key() + key(), "ALLOWED_HOSTS": "tessera.example.com",
           "TESSERA_MASTER_KEYS": key(), "TESSERA_INDEX_KEY": key(), "TESSERA_LEDGER_KEY": key()}
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def assert_one_sentence(result, *needles):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_development_needs_no_configuration_and_generates_keys(tmp_path):
    result = run_manage(tmp_path, "check")
    assert result.returncode == 0, result.stderr
    assert "development keys" in result.stderr
    assert (tmp_path / "dev-keys.json").exists()
    assert oct((tmp_path / "dev-keys.json").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS", "TESSERA_MASTER_KEYS", "TESSERA_INDEX_KEY",
                                     "TESSERA_LEDGER_KEY"])
def test_production_names_every_missing_variable(tmp_path, missing):
    result = run_manage(tmp_path, "check", "--deploy", **production_env(**{missing: None}))
    assert_one_sentence(result, missing, "DEBUG=false")


def test_production_with_everything_set_passes_the_deploy_check(tmp_path):
    result = run_manage(tmp_path, "check", "--deploy", **production_env())
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "dev-keys.json").exists()


@pytest.mark.parametrize(("variable", "value"), [
    ("TESSERA_MASTER_KEYS", "not-a-key"),
    ("TESSERA_MASTER_KEYS", base64.urlsafe_b64encode(b"short").decode()),
    ("TESSERA_INDEX_KEY", base64.urlsafe_b64encode(os.urandom(31)).decode()),
    ("TESSERA_LEDGER_KEY", "!" * 44),
    ("TESSERA_CHECKPOINT_SIGNING_KEY", "not-a-key"),
    ("TESSERA_CHECKPOINT_PUBLIC_KEY", base64.urlsafe_b64encode(os.urandom(31)).decode()),
    ("DATABASE_URL", "mysql://nope"),
    ("DATABASE_URL", "postgres://[broken"),
    ("CELERY_BROKER_URL", "http://example.com"),
    ("DEBUG", "maybe"),
    ("DATABASE_RANDOM_PAGE_COST", "fast"),
    ("DATABASE_RANDOM_PAGE_COST", "-1"),
    ("DATABASE_RANDOM_PAGE_COST", "nan"),
])
def test_a_malformed_value_stops_start_up_naming_the_variable(tmp_path, variable, value):
    result = run_manage(tmp_path, "check", **{variable: value})
    assert_one_sentence(result, variable)
    assert value not in result.stderr or value in ("maybe", "-1", "nan")


def test_malformed_values_stop_production_too(tmp_path):
    result = run_manage(tmp_path, "check", **production_env(TESSERA_MASTER_KEYS=f"{key()},garbage"))
    assert_one_sentence(result, "TESSERA_MASTER_KEYS")


def test_checkpoint_keys_must_be_one_pair_and_are_optional_in_production(tmp_path):
    result = run_manage(tmp_path, "check", **production_env(TESSERA_CHECKPOINT_SIGNING_KEY=key(),
                                                            TESSERA_CHECKPOINT_PUBLIC_KEY=key()))
    assert_one_sentence(result, "TESSERA_CHECKPOINT_PUBLIC_KEY", "TESSERA_CHECKPOINT_SIGNING_KEY")
    # A verifying host holds the public key only; no signing key anywhere is allowed too.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = base64.urlsafe_b64encode(Ed25519PrivateKey.generate().public_key().public_bytes_raw()).decode()
    show = ("from django.conf import settings; print(settings.TESSERA_CHECKPOINT_SIGNING_KEY is None, "
            "len(settings.TESSERA_CHECKPOINT_PUBLIC_KEY or b''))")
    result = run_manage(tmp_path, "shell", "-c", show, **production_env(TESSERA_CHECKPOINT_PUBLIC_KEY=public))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "True 32"
    result = run_manage(tmp_path, "check", "--deploy", **production_env())
    assert result.returncode == 0, result.stderr


def test_development_adds_a_checkpoint_signing_key_to_an_older_dev_keys_file(tmp_path):
    import json

    older = {"TESSERA_MASTER_KEYS": key(), "TESSERA_INDEX_KEY": key(), "TESSERA_LEDGER_KEY": key()}
    (tmp_path / "dev-keys.json").write_text(json.dumps(older))
    result = run_manage(tmp_path, "check")
    assert result.returncode == 0, result.stderr
    assert "TESSERA_CHECKPOINT_SIGNING_KEY" in result.stderr and "development keys" in result.stderr
    keys = json.loads((tmp_path / "dev-keys.json").read_text())
    assert {k: keys[k] for k in older} == older and keys["TESSERA_CHECKPOINT_SIGNING_KEY"]
    assert oct((tmp_path / "dev-keys.json").stat().st_mode & 0o777) == "0o600"


def test_env_example_lists_every_variable():
    listed = {line.split("=")[0] for line in (ROOT / ".env.example").read_text().splitlines()
              if line and not line.startswith("#")}
    settings_text = (ROOT / "cdp" / "settings.py").read_text() + (ROOT / "cdp" / "core" / "keys.py").read_text()
    import re

    used = set(re.findall(r'env_(?:str|bool|int|float|list|url)\(\s*"([A-Z_]+)"', settings_text)) | {
        "TESSERA_MASTER_KEYS", "TESSERA_INDEX_KEY", "TESSERA_LEDGER_KEY", "TESSERA_CHECKPOINT_SIGNING_KEY",
        "TESSERA_CHECKPOINT_PUBLIC_KEY"}
    assert used <= listed, used - listed


@pytest.mark.parametrize(("url_options", "page_cost", "expected"), [
    ("", None, "-c random_page_cost=1.1"),
    ("?options=-c%20statement_timeout%3D5000", None, "-c statement_timeout=5000 -c random_page_cost=1.1"),
    ("", "2.5", "-c random_page_cost=2.5"),
    ("?options=-c%20statement_timeout%3D5000", "0", "-c statement_timeout=5000"),
])
def test_postgresql_sessions_get_the_planner_price_beside_the_urls_own_options(tmp_path, url_options, page_cost,
                                                                                expected):
    env = {"DATABASE_URL": f"postgres://tessera@db.invalid:5432/tessera{url_options}"}
    if page_cost is not None:
        env["DATABASE_RANDOM_PAGE_COST"] = page_cost
    show = "from django.conf import settings; print(settings.DATABASES['default']['OPTIONS'].get('options'))"
    result = run_manage(tmp_path, "shell", "-c", show, **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == expected  # after shell's own notice
