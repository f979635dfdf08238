"""Staff access to the console and the dashboard: the log-in check and the role gate."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render

from cdp.staff import COMPLIANCE, OPERATOR, has_role

ROLE_NAMES = {COMPLIANCE: "compliance officers", OPERATOR: "operators"}


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
