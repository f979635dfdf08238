"""Staff log-in for the console and the dashboard.

The throttle (per user name and address, and per address) is enforced by the
authentication backend for every log-in path, the admin's too (web.staff); this page
only tells a locked client so, with 429.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login, logout
from django.core.exceptions import NON_FIELD_ERRORS
from django.shortcuts import redirect, render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from cdp.staff import COMPLIANCE, OPERATOR, has_role
from web.staff import LOCKED, StaffAuthenticationForm
from web.timezones import COOKIE, COOKIE_AGE, safe_next, zone_valid


def _landing(user) -> str:
    if has_role(user, COMPLIANCE):
        return resolve_url("web:compliance")
    if has_role(user, OPERATOR):
        return resolve_url("web:ops")
    return resolve_url("web:staff-login")


def _next(request, user) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return _landing(user)


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def staff_login(request):
    form = StaffAuthenticationForm(request, data=request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            user = form.get_user()
            login(request, user)
            return redirect(_next(request, user))
        status = 429 if form.has_error(NON_FIELD_ERRORS, LOCKED) else 400
    elif request.user.is_authenticated and (has_role(request.user, COMPLIANCE) or has_role(request.user, OPERATOR)):
        return redirect(_next(request, request.user))
    return render(request, "web/staff/login.html", {"form": form, "next": request.GET.get("next", "")},
                  status=status)


@require_POST
def staff_logout(request):
    logout(request)
    messages.info(request, "You are signed out.")
    return redirect("web:staff-login")


def login_redirect(request):
    """/compliance/login/ and /ops/login/ lead to the one staff log-in."""
    query = request.META.get("QUERY_STRING")
    return redirect(resolve_url("web:staff-login") + (f"?{query}" if query else ""))


@require_POST
def staff_timezone(request):
    """Remember the viewer's time zone for the staff pages (a cookie: a zone name is not personal)."""
    if not request.user.is_authenticated or not request.user.is_staff:
        return redirect("web:staff-login")
    target = safe_next(request, _landing(request.user))
    zone = zone_valid(request.POST.get("timezone"))
    response = redirect(target)
    if zone is None:
        messages.error(request, "Choose a time zone from the list (an IANA name such as Europe/Paris).")
        return response
    response.set_cookie(COOKIE, zone, max_age=COOKIE_AGE, httponly=True, samesite="Lax", secure=request.is_secure())
    messages.success(request, f"Times are now shown in {zone}.")
    return response
