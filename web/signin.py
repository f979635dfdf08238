"""Customers' sign-in: magic links made by consent.services.signin, each usable once, and the session.

consent.services.signin signs the link (profile id, address, time) and mails it; this module
checks a link before the person confirms and again when it is redeemed, once (the link's
hash is recorded in UsedSignInLink, so a second use is refused), and keeps the
signed-in profile id in the session. A link whose profile was merged away or erased, or
whose address no longer opens the profile (detached, or demoted by the identity rules),
signs nobody in. Every /me/ view reads the profile id from the session only. Reads and writes
hashes, ids and times; logs nothing personal.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from functools import wraps
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.core import signing
from django.db import IntegrityError, transaction
from django.shortcuts import redirect
from django.utils import timezone

from consent.errors import ProfileErased, ProfileMerged, ProfileUnknown
from consent.selectors import profile_canonical
from consent.services.signin import MAX_AGE_SECONDS, SALT, sign_in_claim_holds, sign_in_token_check
from web.models import UsedSignInLink
from web.services import gpc_honour

SESSION_KEY = "web.customer"
# A signed-in customer session lasts an hour of inactivity at most.
SESSION_SECONDS = 60 * 60
LINK_MINUTES = MAX_AGE_SECONDS // 60


class SignInRefused(Exception):
    """A link that cannot sign anyone in; `message` says why in words a customer understands."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


EXPIRED = SignInRefused("expired", f"This sign-in link has expired: links work for {LINK_MINUTES} minutes. "
                                   "Ask for a new one below.")
USED = SignInRefused("used", "This sign-in link was already used: each link works once. Ask for a new one below.")
INVALID = SignInRefused("invalid", "This sign-in link is not valid. Check that you copied the whole link, "
                                   "or ask for a new one below.")
GONE = SignInRefused("gone", "This sign-in link belongs to an account that no longer exists or has changed. "
                            "Ask for a new one below.")
DETACHED = SignInRefused("detached", "This sign-in link no longer works: the address it was sent to cannot open "
                                     "this account now. Ask for a new one below.")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sign_in_link_check(token: str) -> UUID:
    """The profile a link signs in, without using it up; raises SignInRefused."""
    try:
        signing.loads(token, salt=SALT, max_age=MAX_AGE_SECONDS)
    except signing.SignatureExpired:
        raise EXPIRED from None
    except signing.BadSignature:
        raise INVALID from None
    claim = sign_in_token_check(token)
    if claim is None:
        raise INVALID
    if UsedSignInLink.objects.filter(token_hash=_hash(token)).exists():
        raise USED
    try:
        # A profile merged since the link was sent is refused too: the merge may have
        # been what brought the address in. The person asks for a new link.
        profile_id = profile_canonical(claim.profile_id)
    except (ProfileUnknown, ProfileErased, ProfileMerged):
        raise GONE from None
    if not sign_in_claim_holds(claim):
        raise DETACHED
    return profile_id


def sign_in_link_redeem(token: str) -> UUID:
    """Use the link up and return its profile id; a second use raises SignInRefused."""
    profile_id = sign_in_link_check(token)
    now = timezone.now()
    try:
        with transaction.atomic():
            UsedSignInLink.objects.create(token_hash=_hash(token), used_at=now)
    except IntegrityError:  # used concurrently
        raise USED from None
    # Hashes of links that have expired anyway are no longer needed to refuse them.
    UsedSignInLink.objects.filter(used_at__lt=now - timedelta(seconds=MAX_AGE_SECONDS + 60)).delete()
    return profile_id


def customer_sign_in(request, profile_id: UUID) -> None:
    request.session.cycle_key()  # no session fixation: a new session id at sign-in
    request.session[SESSION_KEY] = str(profile_id)
    request.session.set_expiry(SESSION_SECONDS)


def customer_sign_out(request) -> None:
    request.session.pop(SESSION_KEY, None)
    request.session.cycle_key()


def customer_of(request) -> UUID | None:
    raw = request.session.get(SESSION_KEY)
    try:
        return UUID(raw) if raw else None
    except ValueError:
        return None


def customer_required(view):
    """Pass the signed-in customer's profile id (from the session, never from the URL).

    A profile erased or merged since sign-in ends the session with a message; `Sec-GPC: 1`
    is recorded as the person's opt-out of sale and sharing (once, not once per page).
    """

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        profile_id = customer_of(request)
        if profile_id is None:
            return redirect("web:me-sign-in")
        try:
            profile_canonical(profile_id)
        except ProfileErased:
            customer_sign_out(request)
            messages.info(request, "Your data was erased, and you have been signed out.")
            return redirect("web:me-sign-in")
        except (ProfileUnknown, ProfileMerged):
            customer_sign_out(request)
            messages.info(request, "Your account changed since you signed in. Please sign in again.")
            return redirect("web:me-sign-in")
        request.session.set_expiry(SESSION_SECONDS)
        # Every request the person makes carries their Global Privacy Control choice.
        gpc_honour(request, profile_id=profile_id)
        return view(request, profile_id, *args, **kwargs)

    return wrapper


def demo_enabled() -> bool:
    return bool(settings.DEBUG)
