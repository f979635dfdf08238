"""Magic-link sign-in for the preference center (the pages themselves live in the web app).

A person types an email address; if it may open a profile, a signed, short-lived link
is mailed to that address (the address is used to send and then forgotten). Which
addresses may is the profile domain's identity rules' decision, asked through the
registry: an address a public write key attached to a known customer never may
(cdp.services.identity_rules). The page answers the same either way, so it tells nobody
whether an address is known. The link names the profile and the address (its blind
index, not the address itself); both are checked again when it is redeemed, so a link
stops working once its address is detached or its profile merged away or erased.
Opening the link puts the profile id in the session; that session is how the
preference center's requests (consent changes, access and erasure requests) are verified.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail

from consent import registry
from consent.models import ConsentState

logger = logging.getLogger(__name__)

SALT = "tessera.preference-center.sign-in"
MAX_AGE_SECONDS = 15 * 60
SESSION_KEY = "tessera_subject"
# Where the preference center opens a link (the web app's route); {token} is replaced.
SIGN_IN_PATH = "/me/signin/{token}/"


@dataclass(frozen=True)
class SignInClaim:
    profile_id: UUID
    address: str  # the blind index of the address the link was mailed to


def sign_in_token(profile_id, address: str) -> str:
    return signing.dumps({"p": str(profile_id), "a": address}, salt=SALT, compress=True)


def sign_in_token_check(token: str) -> SignInClaim | None:
    """The claim of an authentic, unexpired token; None otherwise."""
    try:
        data = signing.loads(token, salt=SALT, max_age=MAX_AGE_SECONDS)
        return SignInClaim(UUID(data["p"]), str(data["a"]))
    except (signing.BadSignature, KeyError, ValueError, TypeError):
        return None


def sign_in_addresses(profile_id) -> list[str]:
    """The addresses (blind indexes) that may open this profile now."""
    return [address for found in registry.run(registry.SIGN_IN_ADDRESSES, profile_id=profile_id)
            for address in found]


def sign_in_claim_holds(claim: SignInClaim) -> bool:
    """Whether the link's address still opens its profile (not detached, merged or erased)."""
    return claim.address in sign_in_addresses(claim.profile_id)


def sign_in_link(*, base_url: str, profile_id, address: str | None = None) -> str:
    """A link for the profile through `address`, by default the first that may open it.

    Raises ValueError when no address of the profile may receive a link.
    """
    if address is None:
        addresses = sign_in_addresses(profile_id)
        if not addresses:
            raise ValueError("no_sign_in_address")
        address = addresses[0]
    return base_url.rstrip("/") + SIGN_IN_PATH.format(token=sign_in_token(profile_id, address))


def sign_in_request(*, email: str, base_url: str) -> str | None:
    """Mail a sign-in link if the address may open a profile; returns the link (for DEBUG pages)."""
    found = [match for match in registry.run(registry.SIGN_IN_ADDRESS, email=email) if match is not None]
    if not found:
        return None
    profile_id, address = found[0]
    link = sign_in_link(base_url=base_url, profile_id=profile_id, address=address)
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
    ids = ConsentState.objects.order_by("profile_id").values_list("profile_id", flat=True).distinct()[:count * 4]
    links = []
    for profile_id in ids:
        if registry.has_handlers(registry.CANONICAL) and registry.run(
                registry.CANONICAL, profile_id=profile_id)[0]["status"] != "active":
            continue
        try:
            links.append(sign_in_link(base_url=base_url, profile_id=profile_id))
        except ValueError:
            continue  # no address of theirs may receive a link
        if len(links) == count:
            break
    return links
