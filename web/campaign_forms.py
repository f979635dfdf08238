"""The /ops/campaigns/ create form: the API's fields, variants as one key per line."""

from __future__ import annotations

from django import forms

from campaigns.models import Allocation, MetricKind
from consent.policy import PURPOSES
from web import labels


class CampaignForm(forms.Form):
    key = forms.SlugField(max_length=64, label="Key (used by integrations)")
    name = forms.CharField(max_length=200)
    variants = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="Variants, one key a line; the "
                               "first is the control (fixed allocation: key=weight)")
    allocation = forms.ChoiceField(choices=Allocation.choices)
    purpose = forms.ChoiceField(choices=[(p, labels.purpose_label(p)) for p in PURPOSES], initial="marketing")
    metric_event = forms.CharField(max_length=200, label="Metric event (name, or type such as purchase)")
    metric_kind = forms.ChoiceField(choices=MetricKind.choices)
    control_share = forms.FloatField(required=False, min_value=0.01, max_value=0.99,
                                     label="Control (holdout) share, optional")
    segment = forms.UUIDField(required=False, label="Audience: segment id (optional; empty: everyone allowed)")
    ends_at = forms.DateTimeField(required=False, label="Ends at (optional, UTC)",
                                  widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    def variant_list(self) -> list[dict]:
        variants = []
        for line in self.cleaned_data["variants"].splitlines():
            key, _, weight = line.strip().partition("=")
            if key.strip():
                try:
                    variants.append({"key": key.strip(), **({"weight": float(weight)} if weight.strip() else {})})
                except ValueError:
                    raise forms.ValidationError("A weight must be a number.") from None
        return variants

    def campaign_arguments(self) -> dict:
        data = self.cleaned_data
        return {"key": data["key"], "name": data["name"], "variants": self.variant_list(),
                "allocation": data["allocation"], "purpose": data["purpose"],
                "metric": {"event": data["metric_event"], "kind": data["metric_kind"]},
                "control_share": data["control_share"], "ends_at": data["ends_at"],
                "audience": {"segment": str(data["segment"])} if data["segment"] else None}
