"""The console's lists you search: the organisation's access log and the DSR queue.

GET forms (their filters name nobody), so a filtered page can be bookmarked and works
without JavaScript; the subject on each row is a small POST form to the subject page,
so a person's id never travels in a URL. Compliance officers only.
"""

from __future__ import annotations

from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache

from consent import selectors as consent_selectors
from web import selectors
from web.filters import AccessLogFilterForm, DsrFilterForm, page_of, query_without
from web.staff import actor_of
from web.views.compliance import compliance_only


@never_cache
@compliance_only
def access_log(request):
    """Every read of personal data and every staff or system action, filtered and paged."""
    form = AccessLogFilterForm(request.GET or None, purposes=consent_selectors.access_log_purposes())
    valid = not form.is_bound or form.is_valid()
    if valid:
        search = form.search() if form.is_bound else {}
        codes = {k: str(v) for k, v in (form.cleaned_data.items() if form.is_bound else ())
                 if v not in (None, "") and k not in ("page", "q")}
        if form.is_bound and form.cleaned_data.get("q"):
            codes["search_text"] = "given"  # what was typed may name someone: not kept
        number = form.page_number() if form.is_bound else 1
        page = selectors.access_log_page(search=search, filters=codes, number=number, actor=actor_of(request))
    else:
        page = page_of([], 1)
    return render(request, "web/compliance/access_log.html", {
        "form": form, "page": page, "query": query_without(request), "section": "access-log"},
        status=200 if valid else 400)


@never_cache
@compliance_only
def requests(request):
    """The DSR queue: open by default (by due date), any status, type, channel, received
    between two dates, or one reference."""
    form = DsrFilterForm(request.GET or None, channels=consent_selectors.dsr_channels())
    valid = not form.is_bound or form.is_valid()
    data = form.cleaned_data if form.is_bound and valid else {}
    show = data.get("show") or "open"
    search = {"statuses": {"open": consent_selectors.OPEN_DSR, "all": None, "overdue": None}.get(show, [show]),
              "overdue": show == "overdue", "request_type": data.get("type") or None,
              "channel": data.get("channel") or None, "reference": (data.get("q") or "").strip() or None}
    if data:
        search["since"], search["until"] = form.bounds()
    page = selectors.dsr_page(search=search, number=form.page_number() if data else 1) if valid else page_of([], 1)
    return render(request, "web/compliance/requests.html", {
        "form": form, "page": page, "show": show, "counts": consent_selectors.dsr_counts(),
        "query": query_without(request), "now": timezone.now(), "section": "requests"},
        status=200 if valid else 400)
