"""System checks of the consent app's configuration.

Consent receipts and the customer's readable export name the controller (the organisation
responsible for the data); an unset detail is left out rather than made up, so a
production deploy without them hands people receipts that name nobody. `check --deploy`
warns about it (a Warning: .ci/run fails the deploy check on warnings).
"""

from __future__ import annotations

from django.conf import settings
from django.core import checks

CONTROLLER_SETTINGS = ("TESSERA_CONTROLLER_NAME", "TESSERA_CONTROLLER_ADDRESS", "TESSERA_CONTROLLER_EMAIL")


@checks.register(checks.Tags.security, deploy=True)
def controller_contact_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    missing = [name for name in CONTROLLER_SETTINGS if not (getattr(settings, name, None) or "").strip()]
    if not missing:
        return []
    return [checks.Warning(
        f"The controller's contact details are not set: {', '.join(missing)}.",
        hint="Consent receipts and the readable export name the controller; set these environment variables "
             "(README, Configuration).",
        id="tessera.W001")]
