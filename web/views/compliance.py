"""The compliance console (/compliance/): staff with the `compliance` role only.

Ledger integrity and "verify now", subject look-up by POST (identifiers never travel in
URLs) with the consent timeline and the access log, consent rates from the DP releases,
the DSR queue and its decisions, the privacy-budget ledger, and ledger exports. Every
look-up, decision, verification and export is written to the access log.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from uuid import UUID

from django.contrib import messages
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from cdp.core.errors import ApplicationError
from cdp.selectors import profile_ids_by_identifier
from cdp.staff import COMPLIANCE
from consent import selectors as consent_selectors
from consent.policy import PURPOSES
from consent.selectors import consent_export_stream
from consent.services import VerificationStatus
from consent.services.checkpoints import ledger_checkpoint_take
from consent.services.dsr import dsr_approve, dsr_audit_trail, dsr_extend, dsr_get, dsr_reject
from consent.services.evidence import CheckpointKeyMissing, evidence_bundle_build
from consent.services.gpc import accessor_of
from consent.services.verification import ledger_verification_request
from web import charts, labels, selectors
from web.filters import (
    ConfigurationFilterForm,
    ReleaseFilterForm,
    TimelineFilterForm,
    VerificationFilterForm,
    list_filters,
    page_of,
    query_without,
)
from web.forms import DsrDecisionForm, LedgerExportForm, PrivacyBudgetLimitForm, SubjectEvidenceForm, SubjectLookupForm
from web.staff import actor_of, role_required

compliance_only = role_required(COMPLIANCE)


def _days(labels_: list[str]) -> list[date] | None:
    """The labels as dates when every one is an ISO day (a time axis), else None."""
    try:
        return [date.fromisoformat(label) for label in labels_]
    except ValueError:
        return None


def _rates_chart(rates: dict):
    if not rates["labels"]:
        return None
    series = [charts.Series(labels.purpose_label(p), rates["series"][p]["values"], rates["series"][p]["errors"])
              for p in PURPOSES]
    days = len(rates["labels"])
    shape = ("one day so far, so each purpose is a point with its 95% error bar" if days == 1 else
             f"{days} days, one line per purpose; the shaded band around each line is its 95% error bound")
    return charts.line_chart(
        rates["labels"], series, chart_id="consent-rates", title="Consent rates per purpose over time",
        x_dates=_days(rates["labels"]), x_title="Day of the release (UTC)", y_title="Share allowing",
        description="Share of active profiles allowing each purpose, per day, from differentially private "
                    f"releases: {shape}.")


@never_cache
@compliance_only
def overview(request):
    rates = selectors.consent_rates_over_time()
    return render(request, "web/compliance/overview.html", {
        "ledger": consent_selectors.ledger_status(), "dsr": consent_selectors.dsr_counts(), "rates": rates,
        "rates_chart": _rates_chart(rates), "purposes": PURPOSES,
        "budgets": selectors.privacy_budgets()[:3], "section": "overview",
    })


@require_POST
@compliance_only
def ledger_verify(request):
    verification, started = ledger_verification_request(actor=actor_of(request))
    detail = verification.detail
    if not started:
        messages.info(request, "A verification is already running; its progress is shown below.")
    elif verification.status == VerificationStatus.PASSED:
        messages.success(request, f"The consent ledger is intact: {detail['events']} events in "
                                  f"{detail['subjects']} chains verified.")
    elif verification.status == VerificationStatus.FAILED:
        messages.error(request, f"The consent ledger is broken: {detail.get('message')}")
    else:
        messages.info(request, "Verification started; this page shows its progress.")
    return redirect("web:compliance-ledger" if request.POST.get("next") == "ledger" else "web:compliance")


@require_POST
@compliance_only
def ledger_checkpoint(request):
    """Take a signed checkpoint of every chain head now; recorded as the officer's action."""
    try:
        path = ledger_checkpoint_take(actor=actor_of(request))
        messages.success(request, f"Checkpoint taken and signed: {Path(path).name}.")
    except CheckpointKeyMissing:
        messages.error(request, "No checkpoint signing key is configured on this host, so no checkpoint can be "
                                "signed here.")
    return redirect("web:compliance-ledger")


@require_POST
@compliance_only
def subject_evidence(request):
    """The signed evidence bundle of one subject (the id comes by POST, never in a URL)."""
    form = SubjectEvidenceForm(request.POST)
    if not form.is_valid():
        raise Http404
    profile_id = form.cleaned_data["profile_id"]
    if selectors.subject_status(profile_id)["status"] == "unknown" and not consent_selectors.subject_known(profile_id):
        raise Http404
    try:
        name, data = evidence_bundle_build(profile_id=profile_id, aliases=selectors.subject_aliases(profile_id),
                                           actor=actor_of(request))
    except CheckpointKeyMissing:
        messages.error(request, "No checkpoint signing key is configured on this host, so no evidence bundle can "
                                "be signed here.")
        return redirect("web:compliance-subjects")
    response = HttpResponse(data, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@compliance_only
def ledger(request):
    today = timezone.now().date()
    form = LedgerExportForm(initial={"date_from": today.replace(day=1), "date_to": today, "kind": "history",
                                     "format": "csv"})
    return _ledger_page(request, form, filters=VerificationFilterForm(request.GET or None))


def _ledger_page(request, form: LedgerExportForm, *, filters: VerificationFilterForm, status: int = 200):
    """The ledger's integrity, the export form and the verification history (filtered, paged)."""
    search, valid = list_filters(filters)
    history = consent_selectors.ledger_verifications(**search) if valid else []
    return render(request, "web/compliance/ledger.html", {
        "ledger": consent_selectors.ledger_status(), "form": form, "filters": filters, "query": query_without(request),
        "history": page_of(history, filters.page_number() if filters.is_bound else 1), "section": "ledger"},
        status=status if valid else 400)


@compliance_only
def ledger_export(request):
    """A streamed download of the ledger (or current states) for a date range; logged."""
    form = LedgerExportForm(request.GET)
    if not form.is_valid():
        return _ledger_page(request, form, filters=VerificationFilterForm(), status=400)
    since, until = form.bounds()
    kind, fmt = form.cleaned_data["kind"], form.cleaned_data["format"]
    lines = consent_export_stream(kind=kind, fmt=fmt, since=since, until=until,
                                  accessor=accessor_of(request, actor=actor_of(request)))
    response = StreamingHttpResponse(lines, content_type="text/csv" if fmt == "csv" else "application/jsonl")
    name = f"consents-{kind}-{form.cleaned_data['date_from']}-{form.cleaned_data['date_to']}.{fmt}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@require_http_methods(["GET", "POST"])
@compliance_only
def subjects(request):
    """Look a person up by POST; the answer is rendered, never redirected to a URL naming them."""
    form = SubjectLookupForm(request.POST or None)
    filters = TimelineFilterForm(request.POST or None)
    context = {"form": form, "filters": filters, "section": "subjects"}
    if request.method == "POST" and form.is_valid() and filters.is_valid():
        profile_id = _lookup(form.cleaned_data)
        context["searched"] = True
        if profile_id is not None:
            subject = selectors.subject_timeline(profile_id=profile_id, actor=actor_of(request),
                                                 by=form.cleaned_data["kind"])
            subject["events_page"] = page_of([e for e in subject["events"] if filters.keep(e)],
                                             filters.page_number())
            subject["accesses_page"] = page_of(subject["accesses"], filters.cleaned_data.get("access_page") or 1)
            context["subject"] = subject
    return render(request, "web/compliance/subjects.html", context,
                  status=400 if form.errors or filters.errors else 200)


def _lookup(data: dict) -> UUID | None:
    kind, value = data["kind"], data["value"]
    if kind == "profile_id":
        try:
            profile_id = UUID(value)
        except ValueError:
            return None
        status = selectors.subject_status(profile_id)
        if status["status"] == "unknown":
            # Erased or never known to the profile store: the ledger may still name it.
            return profile_id if consent_selectors.subject_known(profile_id) else None
        return profile_id
    try:
        found = profile_ids_by_identifier(kind=kind, value=value, source_key=data.get("source") or None)
    except (ApplicationError, ValueError):
        return None
    return found[0] if found else None


@never_cache
@require_http_methods(["GET", "POST"])
@compliance_only
def request_detail(request, request_id: UUID):
    try:
        dsr = dsr_get(request_id=request_id)
    except ApplicationError:
        raise Http404 from None
    form = DsrDecisionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        actor, data = actor_of(request), form.cleaned_data
        try:
            if data["action"] == "approve":
                dsr_approve(request_id=dsr.id, actor=actor)
                messages.success(request, "Approved: the request is being carried out.")
            elif data["action"] == "reject":
                dsr_reject(request_id=dsr.id, actor=actor, reason=data["reason"])
                messages.success(request, "Rejected, with your reason.")
            else:
                dsr_extend(request_id=dsr.id, actor=actor, days=data["days"], reason=data["reason"])
                messages.success(request, f"Extended by {data['days']} days.")
        except ApplicationError as error:
            messages.error(request, error.message)
        return redirect("web:compliance-request", request_id=dsr.id)
    now = timezone.now()
    open_ = consent_selectors.dsr_is_open(dsr)
    audit = [{**entry, "lines": labels.outcome_lines(entry["detail"]), "what": labels.DSR_AUDIT_LABELS.get(
        entry["action"], labels.words(entry["action"]))} for entry in dsr_audit_trail(request_id=dsr.id)]
    return render(request, "web/compliance/request.html", {
        "dsr": dsr, "audit": audit, "form": form, "open": open_, "plain": labels.DSR_PLAIN.get(dsr.type, ""),
        "outcome": labels.outcome_lines(dsr.summary), "named_by": [labels.identifier_label(k) for k in
                                                                   dsr.identifier_kinds or []],
        "overdue": open_ and dsr.due_at < now, "section": "requests"}, status=400 if form.errors else 200)


def _budget_chart(row: dict):
    history = row["history"]
    if not history:
        return None
    top = max(max(h["cap"] for h in history), max(h["spent"] for h in history)) * 1.1
    days = [h["day"] for h in history]
    return charts.line_chart(
        days,
        [charts.Series("ε spent (cumulative, never reset)", [h["spent"] for h in history], [None] * len(history),
                       dash=""),
         charts.Series("Lifetime cap", [h["cap"] for h in history], [None] * len(history), dash="8 4")],
        chart_id=f"budget-{row['budget'].dataset}", y_max=top, fmt=lambda v: f"{v:.2f}", x_dates=_days(days),
        x_title="Day (UTC)", y_title="ε",
        title=f"Privacy budget of {row['budget'].dataset}: cumulative ε spent against the lifetime cap",
        description="Total ε spent by every release of this data set since it was first protected (solid line), "
                    "and the lifetime cap in force (dashed line), per day with a paid release or a change of the cap."
                    + (" One day so far: shown as points." if len(history) == 1 else ""))


@never_cache
@require_http_methods(["GET", "POST"])
@compliance_only
def budget(request):
    """The lifetime budgets and their releases; a compliance officer changes a cap here, with a reason."""
    form = PrivacyBudgetLimitForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        from personalization.privacy import privacy_budget_limits_change  # OpenDP loads only for this

        data = form.cleaned_data
        try:
            changes = privacy_budget_limits_change(dataset=data["dataset"], actor=actor_of(request),
                                                   reason=data["reason"], **{data["limit"]: data["value"]})
            messages.success(request, "Changed and recorded with your reason." if changes else "Nothing changed.")
        except ApplicationError as error:
            messages.error(request, error.message)
        return redirect("web:compliance-budget")
    budgets = selectors.privacy_budgets()
    for row in budgets:
        row["chart"] = _budget_chart(row)
        row["form"] = form if form.is_bound and form.data.get("dataset") == row["budget"].dataset else \
            PrivacyBudgetLimitForm(initial={"dataset": row["budget"].dataset, "limit": "epsilon_limit",
                                            "value": row["budget"].epsilon_limit.normalize()})
    filters = ReleaseFilterForm(request.GET or None, statistics=selectors.dp_statistics())
    found = filters.is_valid() if filters.is_bound else True
    since, until = filters.bounds() if filters.is_bound and found else (None, None)
    releases = selectors.dp_releases(statistic=filters.cleaned_data.get("statistic") if filters.is_bound and found
                                     else None, since=since, until=until)
    return render(request, "web/compliance/budget.html", {
        "budgets": budgets, "filters": filters, "query": query_without(request),
        "releases": page_of(releases if found else [], filters.page_number() if filters.is_bound else 1),
        "section": "budget"}, status=400 if form.errors or not found else 200)


@never_cache
@compliance_only
def configuration(request):
    """Every staff change to consent configuration, with before and after (changes are made in the admin)."""
    form = ConfigurationFilterForm(request.GET or None)
    search, valid = list_filters(form)
    page = selectors.configuration_history(**search, number=form.page_number() if form.is_bound else 1) \
        if valid else page_of([], 1)
    return render(request, "web/compliance/configuration.html", {
        "form": form, "page": page, "query": query_without(request), "section": "configuration"},
        status=200 if valid else 400)
