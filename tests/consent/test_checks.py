"""`check --deploy` warns when the controller's contact details (named in consent receipts)
are not set; development (no --deploy) says nothing."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

from django.core import checks
from django.test import override_settings

from consent.checks import controller_contact_check

SET = {"TESSERA_CONTROLLER_NAME": "Example Shop Ltd", "TESSERA_CONTROLLER_ADDRESS": "1 High Street\nLondon",
       "TESSERA_CONTROLLER_EMAIL": "privacy@example.com"}


def _deploy_messages() -> list[checks.CheckMessage]:
    return [m for m in checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])
            if m.id == "tessera.W001"]


def test_deploy_check_warns_about_each_unset_detail():
    with override_settings(**{**SET, "TESSERA_CONTROLLER_ADDRESS": None, "TESSERA_CONTROLLER_EMAIL": "  "}):
        found = _deploy_messages()
    assert len(found) == 1 and found[0].level == checks.WARNING
    assert "TESSERA_CONTROLLER_ADDRESS" in found[0].msg and "TESSERA_CONTROLLER_EMAIL" in found[0].msg
    assert "TESSERA_CONTROLLER_NAME" not in found[0].msg


def test_deploy_check_is_quiet_when_all_are_set():
    with override_settings(**SET):
        assert _deploy_messages() == [] and controller_contact_check() == []


def test_only_the_deploy_check_runs_it():
    with override_settings(TESSERA_CONTROLLER_NAME=None):
        ordinary = checks.run_checks(include_deployment_checks=False, tags=[checks.Tags.security])
    assert not [m for m in ordinary if m.id == "tessera.W001"]


def _deploy_check(tmp_path, **controller) -> subprocess.CompletedProcess:
    """`manage.py check --deploy --fail-level WARNING` as .ci/run runs it, in production settings."""
    def key() -> str:
        return base64.urlsafe_b64encode(os.urandom(32)).decode()

    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_") and k not in {
        "DATABASE_URL", "CELERY_BROKER_URL", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DJANGO_SETTINGS_MODULE"}}
    env.update({"TESSERA_VAR_DIR": str(tmp_path), "DEBUG": "false", "SECRET_KEY": key() + key(),
                "ALLOWED_HOSTS": "tessera.example.com", "TESSERA_MASTER_KEYS": key(), "TESSERA_INDEX_KEY": key(),
                "TESSERA_LEDGER_KEY": key(), **controller})
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_production_deploy_check_fails_on_it_until_the_details_are_set(tmp_path):
    unset = _deploy_check(tmp_path)
    assert unset.returncode != 0 and "tessera.W001" in unset.stderr and "Traceback" not in unset.stderr
    complete = _deploy_check(tmp_path, **{**SET, "TESSERA_CONTROLLER_ADDRESS": "1 High Street\\nLondon"})
    assert complete.returncode == 0, complete.stderr
