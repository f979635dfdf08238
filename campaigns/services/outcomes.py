"""Each participant's outcome, read from ordinary events (inside the operator boundary).

A participant converts when an event whose name (or type: `purchase`) is the campaign's
metric event occurs after their assignment and before the campaign stopped or ended; the
value is what those events were worth (price × quantity). The pre-period value (the same
metric in the `PRE_DAYS` before assignment) is CUPED's covariate. Participants who withdrew
or no longer allow the campaign's purpose are left out. Exposures are `Experiment Viewed`
events naming the campaign. Values stay in memory; nothing is logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.db.models import Q

from campaigns.models import Assignment, Campaign
from campaigns.services.assignment import EXPOSURE_EVENT
from cdp.models import Event
from consent import policy

PRE_DAYS = 30
CHUNK = 2000


@dataclass
class Outcomes:
    arm: np.ndarray
    propensity: np.ndarray
    weights_version: np.ndarray
    converted: np.ndarray
    value: np.ndarray
    covariate: np.ndarray   # the metric in the pre-period
    exposed: np.ndarray

    @property
    def reward(self) -> np.ndarray:
        return self.value

    def __len__(self) -> int:
        return len(self.arm)


def campaign_outcomes(campaign: Campaign, *, revenue: bool | None = None) -> Outcomes:
    revenue = campaign.metric_kind == "revenue" if revenue is None else revenue
    rows = list(Assignment.objects.filter(campaign=campaign, withdrawn_at__isnull=True)
                .order_by("id").values_list("profile_id", "variant", "propensity", "weights_version", "assigned_at"))
    allowed = policy.allowed([r[0] for r in rows], campaign.purpose) if rows else set()
    rows = [r for r in rows if r[0] in allowed]
    end = min([t for t in (campaign.stopped_at, campaign.ends_at) if t is not None], default=None)
    n = len(rows)
    converted, value, covariate, exposed = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool)
    metric = Q(name=campaign.metric_event) | Q(type=campaign.metric_event)
    exposure = Q(type="custom", name=EXPOSURE_EVENT, item_id=campaign.key)
    for start in range(0, n, CHUNK):
        chunk = rows[start:start + CHUNK]
        index = {r[0]: (start + i, r[4]) for i, r in enumerate(chunk)}
        since = min(r[4] for r in chunk) - timedelta(days=PRE_DAYS)
        events = Event.objects.filter(metric | exposure, profile_id__in=list(index), occurred_at__gte=since)
        if end is not None:
            events = events.filter(occurred_at__lt=end)
        for pid, name, _type, item_id, price, quantity, at in events.values_list(
                "profile_id", "name", "type", "item_id", "price", "quantity", "occurred_at").iterator():
            i, assigned_at = index[pid]
            if name == EXPOSURE_EVENT and item_id == campaign.key:
                exposed[i] |= at >= assigned_at
                if campaign.metric_event != EXPOSURE_EVENT:
                    continue
            worth = float(price or 0) * (quantity or 1) if revenue else 1.0
            if at >= assigned_at:
                converted[i] = 1.0
                value[i] += worth
            elif at >= assigned_at - timedelta(days=PRE_DAYS):
                covariate[i] += worth
    if not revenue:
        value = converted.copy()
        covariate = np.minimum(covariate, 1.0)
    return Outcomes(arm=np.array([r[1] for r in rows], dtype=int), propensity=np.array([r[2] for r in rows]),
                    weights_version=np.array([r[3] for r in rows], dtype=int), converted=converted, value=value,
                    covariate=covariate, exposed=exposed)
