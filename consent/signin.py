"""Magic-link sign-in for the preference center (the pages themselves live in the web app).

A person types an email address; if it names a profile, a signed, short-lived link is
mailed to that address (the address is used to send and then forgotten). The page
answers the same either way, so it tells nobody whether an address is known. Opening
the link puts the profile id in the session; that session is how the preference
center's requests (consent changes, access and erasure requests) are verified.
"""

from __future__ import annotations

import logging
from uuid import UUID

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail

from consent import registry

logger = logging.getLogger(__name__)

SALT = "tessera.preference-center.sign-in"
MAX_AGE_SECONDS = 15 * 60
SESSION_KEY = "tessera_subject"
# Where the preference center opens a link (the web app's route); {token} is replaced.
SIGN_IN_PATH = "/me/signin/{token}/"


def sign_in_token(profile_id) -> str:
    return signing.dumps({"p": str(profile_id)}, salt=SALT, compress=True)


def sign_in_token_check(token: str) -> UUID | None:
    try:
        data = signing.loads(token, salt=SALT, max_age=MAX_AGE_SECONDS)
        return UUID(data["p"])
    except (signing.BadSignature, KeyError, ValueError, TypeError):
        return None


def sign_in_link(*, base_url: str, profile_id) -> str:
    return base_url.rstrip("/") + SIGN_IN_PATH.format(token=sign_in_token(profile_id))


def sign_in_request(*, email: str, base_url: str) -> str | None:
    """Mail a sign-in link if the address names someone; returns the link (for DEBUG pages)."""
    try:
        found = [pid for ids in registry.run(registry.RESOLVE, identifiers={"email": email}, source=None)
                 for pid in ids]
    except ValueError:
        return None
    if not found:
        return None
    link = sign_in_link(base_url=base_url, profile_id=found[0])
    try:
        send_mail("Your sign-in link", f"Open this link within 15 minutes to manage your data:\n\n{link}\n",
                  getattr(settings, "DEFAULT_FROM_EMAIL", None), [email], fail_silently=False)
    except OSError:
        logger.warning("sign_in_mail_failed")  # the address is never logged
    return link


def demo_sign_in_links(*, base_url: str, count: int = 3) -> list[str]:
    """Development only: sign-in links for a few demo customers (those with consent on record)."""
    if not settings.DEBUG:
        return []
    from consent.models import ConsentState

    ids = ConsentState.objects.order_by("profile_id").values_list("profile_id", flat=True).distinct()[:count * 4]
    links = []
    for profile_id in ids:
        if registry.has_handlers(registry.CANONICAL) and registry.run(
                registry.CANONICAL, profile_id=profile_id)[0]["status"] != "active":
            continue
        links.append(sign_in_link(base_url=base_url, profile_id=profile_id))
        if len(links) == count:
            break
    return links
