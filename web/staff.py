"""Staff access to the console, the dashboard and the admin: the throttled log-in and the role gate.

The throttle lives in the authentication backend, so every path that checks a staff
password (/staff/login/, /admin/login/, any later one) counts failures in one place and
obeys one lock. Five wrong passwords for one user name from one address lock that pair
for five minutes, thirty from one address lock the address; while locked even the right
password is refused, and no password is checked at all. Known and unknown user names
are counted and answered alike, so the lock tells nobody which names exist.
"""

from __future__ import annotations

import logging
from functools import wraps

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from cdp.staff import COMPLIANCE, OPERATOR, has_role
from web.throttle import STAFF_LOGIN, STAFF_LOGIN_ADDRESS, client_address, minutes

logger = logging.getLogger(__name__)

ROLE_NAMES = {COMPLIANCE: "compliance officers", OPERATOR: "operators"}
LOCKED = "locked"


def _address(request) -> str:
    return client_address(request) if request is not None else "unknown"


def staff_login_locked_for(*, username: str, request) -> int:
    """Seconds until this user name may try again from this client (0: not locked)."""
    address = _address(request)
    return max(STAFF_LOGIN.locked_for(username, address), STAFF_LOGIN_ADDRESS.locked_for(address))


class ThrottledModelBackend(ModelBackend):
    """Django's model backend behind the staff log-in throttle (AUTHENTICATION_BACKENDS)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        username = str(username)
        if staff_login_locked_for(username=username, request=request):
            # Stops django.contrib.auth.authenticate() here: no other backend, no password check.
            raise PermissionDenied
        address = _address(request)
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None:
            STAFF_LOGIN.reset(username, address)
        elif any([STAFF_LOGIN.hit(username, address), STAFF_LOGIN_ADDRESS.hit(address)]):
            logger.warning("staff_login_locked")  # names no user
        return user


class LockMessage:
    """A log-in form that says "locked" (code `locked`) rather than "wrong password" while
    the throttle refuses; the same words for every user name."""

    def clean(self):
        try:
            return super().clean()
        except forms.ValidationError:
            locked = staff_login_locked_for(username=self.cleaned_data.get("username") or "", request=self.request)
            if locked:
                raise forms.ValidationError(f"Too many failed attempts. Try again in {minutes(locked)} minutes.",
                                            code=LOCKED) from None
            raise


class StaffAuthenticationForm(LockMessage, AuthenticationForm):
    """/staff/login/."""


class StaffAdminAuthenticationForm(LockMessage, AdminAuthenticationForm):
    """/admin/login/ (cdp.urls sets it on the admin site)."""


def role_required(role: str):
    """Anonymous: to the log-in page. Signed in without the role: 403 with a plain page."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not has_role(request.user, role):
                return render(request, "web/staff/forbidden.html", {"who": ROLE_NAMES[role]}, status=403)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def actor_of(request) -> str:
    """Audit rows name staff by user id, as the admin does (a user name can be personal)."""
    return f"staff:{request.user.pk}"
