"""Filters and pages of the console's lists (search, purpose, state, channel, date range,
staff member), as GET forms where the filters name nobody, and inside the subject page's
POST where they sit beside a person's id (ids never travel in URLs).

Dates are days in the viewer's time zone (web.timezones): "from 1 Dec" means from midnight
of 1 December where the viewer is, as the times on the page are shown.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django import forms
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.utils import timezone

from consent.selectors import CHANNEL_NAMES, CONFIGURATION_TITLES, DSR_STATUS_NAMES, DSR_TYPE_NAMES, PURPOSE_TITLES
from web import labels

PER_PAGE = 25


class DateRangeForm(forms.Form):
    """A date range of days in the viewer's zone, and the page of the list."""

    date_from = forms.DateField(required=False, label="From (inclusive)",
                                widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"}))
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", "The end date is before the start date.")
        return data

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        zone = timezone.get_current_timezone()
        start, end = self.cleaned_data.get("date_from"), self.cleaned_data.get("date_to")
        return (datetime.combine(start, time.min, tzinfo=zone) if start else None,
                datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone) if end else None)

    def page_number(self) -> int:
        return (self.cleaned_data.get("page") if self.is_valid() else None) or 1

    def active(self) -> list[str]:
        """The filters in use, in words (the page says what it shows)."""
        if not self.is_valid():
            return []
        shown = []
        for name, field in self.fields.items():
            value = self.cleaned_data.get(name)
            if field.widget.is_hidden or value in (None, "", False):
                continue
            if isinstance(field, forms.ChoiceField):
                value = dict(field.choices).get(value, value)
            shown.append(f"{field.label.lower()}: {value}")
        return shown


def page_of(rows, number: int, per_page: int = PER_PAGE):
    """One page of a queryset or list (the last page for a number past the end)."""
    return Paginator(rows, per_page).get_page(number)


def staff_choices() -> list[tuple[str, str]]:
    users = get_user_model().objects.filter(is_staff=True).order_by("username").values_list("pk", "username")
    return [("", "Anyone"), *[(f"staff:{pk}", f"{name} (staff)") for pk, name in users],
            ("system", "Tessera (automatic)"), ("data_subject", "The person themselves"),
            ("api_key:", "Any API key")]


class AccessLogFilterForm(DateRangeForm):
    q = forms.CharField(required=False, max_length=100, label="Search what was done")
    actor = forms.ChoiceField(required=False, label="Who (staff member)")
    kind = forms.ChoiceField(required=False, label="Kind", choices=[("", "Reads and actions"),
                                                                    ("read", labels.kind_label("read")),
                                                                    ("operator_action",
                                                                     labels.kind_label("operator_action"))])
    purpose = forms.ChoiceField(required=False, label="What or why")

    field_order = ["q", "actor", "kind", "purpose", "date_from", "date_to"]

    def __init__(self, *args, purposes: list[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["actor"].choices = staff_choices()
        self.fields["purpose"].choices = [("", "Anything")] + sorted(
            ((p, labels.action_label(p)) for p in purposes), key=lambda c: c[1])

    def search(self) -> dict:
        """Keyword arguments for consent.selectors.access_log_search."""
        data = self.cleaned_data
        since, until = self.bounds()
        actor = data.get("actor") or None
        found = {"since": since, "until": until, "kind": data.get("kind") or None,
                 "purpose": data.get("purpose") or None}
        if actor and actor.endswith(":"):
            found["actor_prefix"] = actor
        else:
            found["actor"] = actor
        text = (data.get("q") or "").strip().lower()
        if text:
            codes = self.fields["purpose"].choices[1:]
            found["purposes"] = [code for code, title in codes if text in code.lower() or text in title.lower()]
        return found


class DsrFilterForm(DateRangeForm):
    SHOW = [("open", "Open (received, awaiting approval, in progress)"), ("overdue", "Overdue"),
            ("all", "All"), *DSR_STATUS_NAMES.items()]

    q = forms.CharField(required=False, max_length=36, label="Reference")
    show = forms.ChoiceField(required=False, label="Status", choices=SHOW)
    type = forms.ChoiceField(required=False, label="Type", choices=[("", "Any type"), *DSR_TYPE_NAMES.items()])
    channel = forms.ChoiceField(required=False, label="Channel")

    field_order = ["q", "show", "type", "channel", "date_from", "date_to"]

    def __init__(self, *args, channels: list[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["channel"].choices = [("", "Any channel"), *((c, labels.channel_label(c)) for c in channels)]
        self.fields["date_from"].label, self.fields["date_to"].label = "Received from", "Received until"


class TimelineFilterForm(DateRangeForm):
    """Inside the subject page's POST: which of the person's ledger events to show."""

    STATES = [("", "Any decision"), ("granted", labels.state_label("granted")),
              ("declined", labels.state_label("declined")), ("withdrawn", labels.state_label("withdrawn"))]

    purpose = forms.ChoiceField(required=False, label="Purpose", choices=[("", "Any purpose"),
                                                                          *PURPOSE_TITLES.items()])
    state = forms.ChoiceField(required=False, label="Decision", choices=STATES)
    channel = forms.ChoiceField(required=False, label="Channel", choices=[("", "Any channel"),
                                                                          *CHANNEL_NAMES.items()])
    access_page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    field_order = ["purpose", "state", "channel", "date_from", "date_to"]

    def keep(self, event) -> bool:
        data = self.cleaned_data
        since, until = self.bounds()
        return ((not data.get("purpose") or event.purpose == data["purpose"])
                and (not data.get("state") or event.decision == data["state"])
                and (not data.get("channel") or event.channel == data["channel"])
                and (since is None or event.occurred_at >= since) and (until is None or event.occurred_at < until))


class VerificationFilterForm(DateRangeForm):
    outcome = forms.ChoiceField(required=False, label="Outcome", choices=[
        ("", "Any outcome"), ("intact", "Intact"), ("broken", "Broken")])

    field_order = ["outcome", "date_from", "date_to"]

    def __init__(self, *args, **kwargs):
        # Beside the export form on the same page: its own element ids.
        super().__init__(*args, auto_id="history_%s", **kwargs)
        self.fields["date_from"].label, self.fields["date_to"].label = "Verified from", "Verified until"


class ReleaseFilterForm(DateRangeForm):
    statistic = forms.ChoiceField(required=False, label="Statistic")

    field_order = ["statistic", "date_from", "date_to"]

    def __init__(self, *args, statistics: list[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["statistic"].choices = [("", "Any statistic"), *(
            (s, labels.STATISTIC_LABELS.get(s, labels.words(s))) for s in statistics)]


class IngestionFilterForm(DateRangeForm):
    source = forms.ChoiceField(required=False, label="Source")
    code = forms.ChoiceField(required=False, label="Error")

    field_order = ["source", "code", "date_from", "date_to"]

    def __init__(self, *args, sources=(), codes=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["source"].choices = [("", "Any source"), *sources]
        self.fields["code"].choices = [("", "Any error"), *((c, labels.words(c)) for c in codes)]


class DeliveryFilterForm(DateRangeForm):
    status = forms.ChoiceField(required=False, label="Status", choices=[
        ("", "Any status"), ("failing", "Failing or failed"), ("pending", "Pending"), ("succeeded", "Succeeded"),
        ("failed", "Failed (attempts exhausted)"), ("cancelled", "Cancelled")])
    endpoint = forms.CharField(required=False, max_length=200, label="Endpoint contains")

    field_order = ["status", "endpoint", "date_from", "date_to"]


class AttemptFilterForm(DateRangeForm):
    """The failed webhook attempts, beside the deliveries' own filters on the same page (hence
    the prefix: `attempts-date_from`, `attempts-page`)."""

    outcome = forms.ChoiceField(required=False, label="Outcome", choices=[
        ("", "Any failure"), ("failed", "Failed"), ("lost", "Lost (the worker stopped mid-attempt)"),
        ("sending", "Still sending")])
    endpoint = forms.CharField(required=False, max_length=200, label="Endpoint contains")

    field_order = ["outcome", "endpoint", "date_from", "date_to"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, prefix="attempts", **kwargs)


class RunFilterForm(DateRangeForm):
    status = forms.ChoiceField(required=False, label="Status")
    trigger = forms.ChoiceField(required=False, label="Started by")

    field_order = ["status", "trigger", "date_from", "date_to"]

    def __init__(self, *args, statuses=(), triggers=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [("", "Any status"), *statuses]
        self.fields["trigger"].choices = [("", "Anyone or anything"), *((t, labels.trigger_label(t))
                                                                        for t in triggers)]
        self.fields["date_from"].label, self.fields["date_to"].label = "Created from", "Created until"


class MergeFilterForm(DateRangeForm):
    reason = forms.ChoiceField(required=False, label="Reason")
    conflicts_page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    field_order = ["reason", "date_from", "date_to"]

    def __init__(self, *args, reasons=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].choices = [("", "Any reason"), *((r, labels.words(r)) for r in reasons)]


class CampaignFilterForm(DateRangeForm):
    search = forms.CharField(required=False, max_length=100, label="Key or name contains")
    status = forms.ChoiceField(required=False, label="Status", choices=[
        ("", "Any status"), ("running", "Running"), ("scheduled", "Scheduled"), ("ended", "Ended"),
        ("stopped", "Stopped")])

    field_order = ["search", "status", "date_from", "date_to"]


def list_filters(form: DateRangeForm) -> tuple[dict, bool]:
    """A bound filter form's choices as keyword arguments (dates as bounds), and whether
    it was valid; an unbound form filters nothing."""
    if not form.is_bound:
        return {}, True
    if not form.is_valid():
        return {}, False
    data = {k: v for k, v in form.cleaned_data.items() if k not in ("page", "date_from", "date_to")
            and not k.endswith("_page")}
    data["since"], data["until"] = form.bounds()
    return data, True


def query_without(request, *names: str) -> str:
    """The request's query string without the paging parameters (the pager adds its own)."""
    query = request.GET.copy()
    for name in names or ("page",):
        query.pop(name, None)
    return query.urlencode()


class ConfigurationFilterForm(DateRangeForm):
    action = forms.ChoiceField(required=False, label="What", choices=[("", "Any setting"),
                                                                      *CONFIGURATION_TITLES.items()])
    actor = forms.ChoiceField(required=False, label="Who (staff member)")

    field_order = ["action", "actor", "date_from", "date_to"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["actor"].choices = [c for c in staff_choices() if c[0].startswith("staff:") or not c[0]]
