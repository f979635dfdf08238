"""The customer preference center (/me/).

Sign-in by magic link (consent.services.signin makes and mails it; web.signin uses it once); the
signed-in profile id lives in the session and every view reads that id only, never one
from the URL or a form. `Sec-GPC: 1` is honoured on every signed-in request. Changes go
to the consent ledger through web.services; access and erasure are data-subject requests
(consent.services.dsr), verified by the session.
"""

from __future__ import annotations

import json
from uuid import UUID

from django.contrib import messages
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from consent import policy
from consent.errors import ProfileUnknown
from consent.selectors import consent_receipt, consent_receipt_list, dsr_for_profile, dsr_list_for_profile
from consent.services import Channel, DsrStatus, DsrType, notices_served_anew
from consent.services.dsr import dsr_result, dsr_submit
from consent.services.gpc import accessor_of, gpc_signalled
from consent.services.signin import demo_sign_in_links, sign_in_link, sign_in_request
from personalization.selectors import profile_ids_with_recommendations
from web import selectors
from web.customer import customer_locale, me_access_log
from web.export_summary import export_summary
from web.services import CUSTOMER_ACTOR, ChoiceRefused, me_choices_save
from web.signin import (
    LINK_MINUTES,
    SignInRefused,
    customer_of,
    customer_required,
    customer_sign_in,
    customer_sign_out,
    demo_enabled,
    sign_in_link_check,
    sign_in_link_redeem,
)
from web.throttle import SIGN_IN_REQUEST_ADDRESS, SIGN_IN_REQUEST_EMAIL, client_address, minutes

LANGUAGE = "en"
SENT = ("If this address belongs to a customer, we have sent a sign-in link to it. "
        f"It works once, for {LINK_MINUTES} minutes.")


def _json_download(document, filename: str) -> HttpResponse:
    response = HttpResponse(json.dumps(document, indent=2, cls=DjangoJSONEncoder), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def _to(request, view: str, place: str):
    """Back to the page, scrolled to the section whose message answers the action (on a phone
    the top of the page is often far from the button that was pressed)."""
    return redirect(f"{reverse(view)}#{place}")


# --- signing in ----------------------------------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def sign_in(request):
    """Ask for a link by e-mail address; the answer is the same whether the address is known."""
    if request.method == "GET" and customer_of(request):
        return redirect("web:me-home")
    status = 200
    if request.method == "POST":
        email = (request.POST.get("email") or "").strip()[:254]
        address = client_address(request)
        locked = SIGN_IN_REQUEST_ADDRESS.locked_for(address)
        if locked:
            messages.error(request, f"Too many sign-in requests from your network. Try again in "
                                    f"{minutes(locked)} minutes.")
            status = 429
        elif not email or "@" not in email:
            messages.error(request, "Enter the e-mail address you gave us.")
            status = 400
        else:
            SIGN_IN_REQUEST_ADDRESS.hit(address)
            # A flooded mailbox gets no more links, but the answer stays the same.
            if not SIGN_IN_REQUEST_EMAIL.locked_for(email):
                SIGN_IN_REQUEST_EMAIL.hit(email)
                sign_in_request(email=email, base_url=request.build_absolute_uri("/"))
            messages.success(request, SENT)
            return redirect("web:me-sign-in")
    return render(request, "web/me/sign_in.html", {"demo": demo_enabled(), "link_minutes": LINK_MINUTES},
                  status=status)


@never_cache
@require_http_methods(["GET", "POST"])
def sign_in_link_open(request, token: str):
    """GET shows a button (mail scanners that open links use nothing up); POST signs in."""
    try:
        if request.method == "POST":
            profile_id = sign_in_link_redeem(token)
            customer_sign_in(request, profile_id)
            messages.success(request, "You are signed in.")
            return redirect("web:me-home")
        sign_in_link_check(token)
    except SignInRefused as refusal:
        return render(request, "web/me/link_refused.html", {"refusal": refusal}, status=410
                      if refusal.code in ("expired", "used", "gone", "detached") else 400)
    return render(request, "web/me/link_confirm.html", {"token": token})


@never_cache
def demo(request):
    """Development only: sign-in links for a few demo customers (no personal data shown)."""
    if not demo_enabled():
        raise Http404
    base = request.build_absolute_uri("/")
    # Customers with recommendations first: they show every part of the page.
    with_recs = profile_ids_with_recommendations(limit=20)
    people = []
    for profile_id in with_recs:
        if selectors.subject_status(profile_id)["status"] == "active" and \
                policy.is_allowed(profile_id, "personalization"):
            people.append(profile_id)
        if len(people) == 3:
            break
    links = []
    for profile_id in people:
        try:
            url = sign_in_link(base_url=base, profile_id=profile_id)
        except ValueError:
            continue  # no address of theirs may receive a link
        links.append({"label": f"Demo customer {len(links) + 1}", "url": url, "note": "has recommendations"})
    if len(links) < 3:
        for url in demo_sign_in_links(base_url=base, count=6):
            if len(links) < 3 and url not in {link["url"] for link in links}:
                links.append({"label": f"Demo customer {len(links) + 1}", "url": url, "note": ""})
    return render(request, "web/me/demo.html", {"links": links, "link_minutes": LINK_MINUTES})


@require_POST
def sign_out(request):
    customer_sign_out(request)
    messages.info(request, "You are signed out.")
    return redirect("web:me-sign-in")


# --- choices and recommendations ------------------------------------------------------------------------


@never_cache
@customer_required
def home(request, profile_id: UUID):
    purposes = selectors.me_purposes(profile_id=profile_id, language=LANGUAGE)
    notices_served_anew(profile_id=profile_id, notices=purposes, channel=Channel.PREFERENCE_CENTER)
    locale = customer_locale(profile_id=profile_id, request=request)
    with timezone.override(locale.zone):
        return render(request, "web/me/home.html", {
            "purposes": purposes, "gpc": gpc_signalled(request), "section": "home", "locale": locale,
            "recommendations": selectors.me_recommendations(profile_id=profile_id),
        })


def _versions(request) -> dict:
    versions = {}
    for key, value in request.POST.items():
        if key.startswith("notice_") and value.isdigit():
            versions[key.removeprefix("notice_")] = int(value)
    return versions


@require_POST
@customer_required
def choices_save(request, profile_id: UUID):
    try:
        recorded = me_choices_save(profile_id=profile_id, allowed=set(request.POST.getlist("allow")),
                                   versions=_versions(request), request=request)
    except ChoiceRefused as refusal:
        messages.error(request, refusal.message, extra_tags="choices")
        return _to(request, "web:me-home", "choices")
    messages.success(request, f"Saved: {recorded} change{'s' if recorded != 1 else ''} recorded in your consent "
                              "history." if recorded else "Nothing changed.", extra_tags="choices")
    return _to(request, "web:me-home", "choices")


@require_POST
@customer_required
def personalization_set(request, profile_id: UUID):
    """The buttons in "Why am I seeing this?" and the recommendations section."""
    turn_on = request.POST.get("personalization") == "on"
    try:
        me_choices_save(profile_id=profile_id, allowed={"personalization"} if turn_on else set(),
                        versions=_versions(request), request=request, only={"personalization"})
    except ChoiceRefused as refusal:
        messages.error(request, refusal.message, extra_tags="recommendations")
        return _to(request, "web:me-home", "recommendations")
    messages.success(request, "Personalized recommendations are on." if turn_on else
                     "Personalized recommendations are off. Your recommendations were deleted and none will "
                     "be made until you turn them on again.", extra_tags="recommendations")
    return _to(request, "web:me-home", "recommendations")


# --- your data: export, receipts, erasure -----------------------------------------------------------------


@never_cache
@customer_required
def data(request, profile_id: UUID):
    locale = customer_locale(profile_id=profile_id, request=request)
    with timezone.override(locale.zone):
        return render(request, "web/me/data.html", {
            "events": selectors.me_consent_events(profile_id=profile_id),
            "requests": dsr_list_for_profile(profile_id=profile_id),
            "titles": selectors.purpose_titles(LANGUAGE), "section": "data", "locale": locale,
            "accesses": me_access_log(subject_ids=[profile_id, *selectors.subject_aliases(profile_id)],
                                      locale=locale),
        })


@require_POST
@customer_required
def export_request(request, profile_id: UUID):
    dsr = dsr_submit(request_type=DsrType.ACCESS, channel=Channel.PREFERENCE_CENTER, actor=CUSTOMER_ACTOR,
                     profile_id=profile_id)
    dsr.refresh_from_db()  # carried out after its commit when tasks run in-process
    if dsr.status == DsrStatus.AWAITING_APPROVAL:
        messages.info(request, "Your request needs a check by our privacy team first. We will answer within "
                               "30 days; the download appears here when it is ready.", extra_tags="export")
    elif dsr.status == DsrStatus.COMPLETED:
        messages.success(request, "Your data is ready: download it below, as a file (JSON) or as a page to read "
                                  "and print.", extra_tags="export")
    else:
        messages.success(request, "Your data is being gathered. The download appears below when it is ready.",
                         extra_tags="export")
    return _to(request, "web:me-data", "export")


@never_cache
@customer_required
def export_download(request, profile_id: UUID, request_id: UUID, readable: bool = False):
    """One of the person's completed exports: the JSON file, or (`readable`) the same export as
    a page to read and print, with names, dates and words instead of codes."""
    dsr = dsr_for_profile(profile_id=profile_id, request_id=request_id)
    if dsr is None or dsr.type not in (DsrType.ACCESS, DsrType.PORTABILITY) or dsr.status != DsrStatus.COMPLETED:
        raise Http404
    document = dsr_result(dsr, reader=CUSTOMER_ACTOR)
    if document.get("expired"):
        messages.info(request, "This download has expired. Ask for a new one.", extra_tags="export")
        return _to(request, "web:me-data", "export")
    if not readable:
        return _json_download(document, f"my-data-{dsr.received_at:%Y-%m-%d}.json")
    summary = export_summary(document, browser_language=translation.get_language_from_request(request))
    response = render(request, "web/me/export_summary.html", {**summary, "dsr": dsr, "section": "data"})
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@customer_required
def receipt(request, profile_id: UUID, event_id: UUID):
    try:
        document = consent_receipt(profile_id=profile_id, event_id=event_id,
                                   accessor=accessor_of(request, actor=CUSTOMER_ACTOR))
    except ProfileUnknown:
        raise Http404 from None
    return _json_download(document, f"consent-receipt-{event_id}.json")


@never_cache
@customer_required
def receipts_all(request, profile_id: UUID):
    receipts = consent_receipt_list(profile_id=profile_id, accessor=accessor_of(request, actor=CUSTOMER_ACTOR))
    return _json_download({"receipts": receipts}, "consent-receipts.json")


@never_cache
@require_http_methods(["GET", "POST"])
@customer_required
def erase(request, profile_id: UUID):
    """A confirmation step first; then an erasure request, usually carried out at once."""
    if request.method == "GET":
        return render(request, "web/me/erase.html", {})
    if request.POST.get("confirm") != "yes":
        messages.error(request, "Tick the box to confirm that you want your data erased.")
        return render(request, "web/me/erase.html", {"unconfirmed": True}, status=400)
    dsr = dsr_submit(request_type=DsrType.ERASURE, channel=Channel.PREFERENCE_CENTER, actor=CUSTOMER_ACTOR,
                     profile_id=profile_id)
    dsr.refresh_from_db()
    if dsr.status == DsrStatus.COMPLETED:
        customer_sign_out(request)
        return render(request, "web/me/erased.html", {"dsr": dsr})
    messages.info(request, "Your erasure request was received. We will carry it out within 30 days and you "
                           "can follow it below.", extra_tags="export")
    return _to(request, "web:me-data", "export")
