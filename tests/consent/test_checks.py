"""`check --deploy` warns when the controller's contact details (named in consent receipts)
are not set; development (no --deploy) says nothing."""

from __future__ import annotations

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
