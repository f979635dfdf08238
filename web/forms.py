"""Forms of the console and the dashboard (labels and validation in one place)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django import forms

from cdp.core.identifiers import CRM_ID, EMAIL, PHONE, SOURCE_SCOPED_KINDS, USER_ID
from cdp.models import Source
from consent.services.dsr import MAX_EXTENSION_DAYS

# The identifier kinds a compliance officer looks people up by (cdp.core.identifiers), and
# the profile id itself.
LOOKUP_KINDS = [(EMAIL, "E-mail address"), (PHONE, "Phone number"), (CRM_ID, "CRM id"),
                (USER_ID, "User id (web or app)"), ("profile_id", "Profile id")]


class SubjectEvidenceForm(forms.Form):
    profile_id = forms.UUIDField(widget=forms.HiddenInput)


class SubjectLookupForm(forms.Form):
    kind = forms.ChoiceField(choices=LOOKUP_KINDS, label="Look up by")
    value = forms.CharField(max_length=254, label="Value", strip=True,
                            widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))
    source = forms.ChoiceField(required=False, label="Source (for CRM and user ids)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["source"].choices = [("", "—")] + list(Source.objects.order_by("key").values_list("key", "name"))

    def clean(self):
        data = super().clean()
        if data.get("kind") in SOURCE_SCOPED_KINDS and not data.get("source"):
            self.add_error("source", "Choose the source: CRM and user ids are unique only within one source.")
        return data


class LedgerExportForm(forms.Form):
    date_from = forms.DateField(label="From (inclusive)", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"}))
    kind = forms.ChoiceField(choices=[("history", "Every consent event (the ledger)"),
                                      ("current", "Current state per person and purpose")], label="What")
    format = forms.ChoiceField(choices=[("csv", "CSV"), ("jsonl", "JSON Lines")], label="Format")

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", "The end date is before the start date.")
        return data

    def bounds(self) -> tuple[datetime, datetime]:
        start = datetime.combine(self.cleaned_data["date_from"], time.min, tzinfo=UTC)
        end = datetime.combine(self.cleaned_data["date_to"], time.min, tzinfo=UTC) + timedelta(days=1)
        return start, end


class DsrDecisionForm(forms.Form):
    action = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject"), ("extend", "Extend")])
    reason = forms.CharField(required=False, max_length=500, label="Reason (no personal data)")
    days = forms.IntegerField(required=False, min_value=1, max_value=MAX_EXTENSION_DAYS, label="Extra days")

    def clean(self):
        data = super().clean()
        if data.get("action") in ("reject", "extend") and not data.get("reason"):
            self.add_error("reason", "Give a reason: the person will read it.")
        if data.get("action") == "extend" and not data.get("days"):
            self.add_error("days", f"How many days (1 to {MAX_EXTENSION_DAYS})?")
        return data


class PrivacyBudgetLimitForm(forms.Form):
    """A compliance officer's change of a data set's lifetime cap or monthly pace."""

    dataset = forms.CharField(max_length=64, widget=forms.HiddenInput)
    limit = forms.ChoiceField(choices=[("epsilon_limit", "Lifetime ε cap"),
                                       ("period_epsilon_limit", "ε a month may spend (pace)"),
                                       ("delta_limit", "Lifetime δ cap")], label="Limit")
    value = forms.DecimalField(min_value=0, max_digits=20, decimal_places=15, label="New value")
    reason = forms.CharField(max_length=2000, strip=True, label="Reason (recorded and shown here)",
                             widget=forms.Textarea(attrs={"rows": 2}))


class RecommendationOverrideForm(forms.Form):
    """An operator's block or pin (personalization.services.oversight)."""

    kind = forms.ChoiceField(choices=[("block", "Block it from every list"), ("pin", "Pin it first")], label="Action")
    item_id = forms.CharField(max_length=128, label="Item id", strip=True)
    segment_name = forms.ChoiceField(required=False, label="For customers in (pins only)")
    reason = forms.CharField(max_length=500, label="Reason (kept in the audit trail)", strip=True,
                             widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, segment_names: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["segment_name"].choices = [("", "all customers")] + [(n, n) for n in segment_names]
