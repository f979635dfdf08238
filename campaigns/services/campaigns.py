"""Creating and stopping campaigns; the first allocation."""

from __future__ import annotations

import re
import secrets
import uuid

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns.errors import CampaignErrorCode, CampaignInvalid, CampaignUnknown
from campaigns.models import Allocation, AllocationSnapshot, Campaign, MetricKind
from campaigns.stats.arms import floor_weights
from consent.policy import PURPOSES
from personalization.models import Segment

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
RULE_OPS = ("eq", "ne", "in", "not_in", "exists")
MAX_VARIANTS = 10


def campaign_get(*, key: str) -> Campaign:
    campaign = Campaign.objects.filter(key=key).first() if isinstance(key, str) and len(key) <= 64 else None
    if campaign is None:
        raise CampaignUnknown("No campaign has this key.")
    return campaign


def _invalid(message: str, code: str = CampaignErrorCode.INVALID_CAMPAIGN):
    return CampaignInvalid(message, code=code)


def rule_conditions(rule) -> list[dict]:
    """An audience rule as a list of conditions, all of which must hold: one condition
    `{"attribute", "op", "value"}`, a list of them, or `{"all": [...]}`. Only attributes
    declared non-personal (stored in plaintext) may be used: the rule is evaluated on every
    assignment and must not decrypt anything."""
    conditions = rule.get("all") if isinstance(rule, dict) and "all" in rule else rule
    conditions = [conditions] if isinstance(conditions, dict) else conditions
    if not isinstance(conditions, list) or not conditions or len(conditions) > 20:
        raise _invalid("audience.rule must be a condition or a list of 1 to 20 conditions.")
    for condition in conditions:
        if not isinstance(condition, dict) or condition.get("op", "eq") not in RULE_OPS:
            raise _invalid("Each rule condition needs an attribute and an op among " + ", ".join(RULE_OPS) + ".")
        name = condition.get("attribute")
        if not isinstance(name, str) or name not in settings.TESSERA_NON_PERSONAL_ATTRIBUTES:
            raise _invalid("Rules may use only attributes declared non-personal (TESSERA_NON_PERSONAL_ATTRIBUTES).",
                           CampaignErrorCode.PERSONAL_ATTRIBUTE)
        if condition.get("op") in ("in", "not_in") and not isinstance(condition.get("value"), list):
            raise _invalid("The in and not_in operators take a list value.")
    return conditions


def _audience_check(audience) -> dict | None:
    if audience in (None, {}):
        return None
    if not isinstance(audience, dict) or len(audience) != 1 or not ({"segment", "rule"} & set(audience)):
        raise _invalid('audience must be {"segment": id} or {"rule": ...}.')
    if "segment" in audience:
        if not Segment.objects.filter(id=_uuid(audience["segment"])).exists():
            raise _invalid("No segment has this id.", CampaignErrorCode.UNKNOWN_SEGMENT)
        return {"segment": str(audience["segment"])}
    return {"rule": rule_conditions(audience["rule"])}


def _uuid(value):
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise _invalid("No segment has this id.", CampaignErrorCode.UNKNOWN_SEGMENT) from None


def initial_weights(*, variants: list[dict], allocation: str, control_share: float | None, min_weight: float) -> list:
    """Fixed: the variants' weights (equal by default). Bandit: equal shares. A control share
    pins the first variant's share; the others split the rest."""
    k = len(variants)
    bandit = allocation == Allocation.BANDIT
    raw = np.ones(k) if bandit else np.array([float(v.get("weight", 1.0)) for v in variants])
    if control_share is not None:
        rest = raw[1:] / raw[1:].sum() * (1.0 - control_share)
        return [float(control_share)] + [float(x) for x in rest]
    weights = raw / raw.sum()
    return [float(x) for x in (floor_weights(weights, min_weight) if allocation == Allocation.BANDIT else weights)]


def _variants_check(variants) -> list[dict]:
    if not isinstance(variants, list) or not 2 <= len(variants) <= MAX_VARIANTS:
        raise _invalid(f"A campaign needs 2 to {MAX_VARIANTS} variants; the first is the control.")
    keys = [v.get("key") if isinstance(v, dict) else None for v in variants]
    if any(not isinstance(k, str) or not KEY_PATTERN.match(k) for k in keys) or len(set(keys)) != len(keys):
        raise _invalid("Variant keys must be distinct lower-case slugs (a-z, 0-9, _ and -).")
    cleaned = []
    for variant in variants:
        weight = variant.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight < 1e6:
            raise _invalid("A variant's weight must be a positive number.")
        cleaned.append({"key": variant["key"], "weight": float(weight)})
    return cleaned


@transaction.atomic
def campaign_create(*, key: str, name: str, variants: list, actor: str, purpose: str = "marketing",
                    audience: dict | None = None, allocation: str = Allocation.FIXED,
                    control_share: float | None = None, metric: dict | None = None, starts_at=None,
                    ends_at=None, frequency_cap: dict | None = None, min_weight: float = 0.01,
                    warmup: int = 100) -> Campaign:
    """Validate and store a campaign with its first allocation. Reads segments (to check an
    audience); writes Campaign and AllocationSnapshot; logs nothing personal."""
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise _invalid("key must be a lower-case slug of up to 64 characters (a-z, 0-9, _ and -).")
    if purpose not in PURPOSES:
        raise _invalid("purpose must be one of " + ", ".join(PURPOSES) + ".")
    if allocation not in Allocation.values:
        raise _invalid("allocation must be fixed or bandit.")
    variants = _variants_check(variants)
    if control_share is not None and not 0 < control_share < 1:
        raise _invalid("control_share must be between 0 and 1.")
    metric = metric or {}
    if not isinstance(metric.get("event"), str) or not metric["event"].strip() or len(metric["event"]) > 200:
        raise _invalid('metric must name the event that counts: {"event": NAME, "kind": "conversion|revenue"}.')
    if metric.get("kind", MetricKind.CONVERSION) not in MetricKind.values:
        raise _invalid("metric.kind must be conversion or revenue.")
    if not 0 <= min_weight <= 1.0 / len(variants) or not 0 <= warmup <= 1_000_000:
        raise _invalid(f"min_weight must be between 0 and {1 / len(variants):.3f}; warmup at most 1,000,000.")
    now = timezone.now()
    starts_at = starts_at or now
    if ends_at is not None and ends_at <= starts_at:
        raise _invalid("ends_at must come after starts_at.")
    cap_exposures, cap_hours = None, 24
    if frequency_cap:
        cap_exposures, cap_hours = frequency_cap.get("exposures"), frequency_cap.get("hours", 24)
        if not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 100_000
                   for v in (cap_exposures, cap_hours)):
            raise _invalid('frequency_cap must be {"exposures": N, "hours": H} with whole numbers from 1.')
    weights = initial_weights(variants=variants, allocation=allocation, control_share=control_share,
                              min_weight=min_weight)
    try:
        with transaction.atomic():
            campaign = Campaign.objects.create(
                key=key, name=(name or key)[:200], purpose=purpose, audience=_audience_check(audience),
                variants=variants, allocation=allocation, control_share=control_share,
                metric_event=metric["event"].strip(), metric_kind=metric.get("kind", MetricKind.CONVERSION),
                frequency_cap=cap_exposures, frequency_hours=cap_hours, min_weight=min_weight, warmup=warmup,
                salt=secrets.token_hex(16), weights=weights, weights_updated_at=now, starts_at=starts_at,
                ends_at=ends_at, created_by=actor[:200])
    except IntegrityError:
        raise _invalid("A campaign with this key exists.", CampaignErrorCode.CAMPAIGN_EXISTS) from None
    AllocationSnapshot.objects.create(campaign=campaign, at=now, weights=weights, version=1, reason="created")
    return campaign


def campaign_stop(*, key: str, actor: str) -> Campaign:
    """Stop assigning at once (idempotent: a stopped campaign keeps its first stop time)."""
    campaign = campaign_get(key=key)
    Campaign.objects.filter(pk=campaign.pk, stopped_at__isnull=True).update(stopped_at=timezone.now())
    campaign.refresh_from_db()
    return campaign


def campaign_as_dict(campaign: Campaign) -> dict:
    now = timezone.now()
    status = ("stopped" if campaign.stopped_at else "ended" if campaign.ends_at and now >= campaign.ends_at
              else "scheduled" if now < campaign.starts_at else "running")
    return {
        "key": campaign.key, "name": campaign.name, "purpose": campaign.purpose, "audience": campaign.audience,
        "variants": [{"key": v["key"], "weight": v["weight"], "allocation": w}
                     for v, w in zip(campaign.variants, campaign.weights, strict=True)],
        "allocation": campaign.allocation, "control_share": campaign.control_share,
        "metric": {"event": campaign.metric_event, "kind": campaign.metric_kind},
        "frequency_cap": ({"exposures": campaign.frequency_cap, "hours": campaign.frequency_hours}
                          if campaign.frequency_cap else None),
        "min_weight": campaign.min_weight, "warmup": campaign.warmup, "status": status,
        "starts_at": _iso(campaign.starts_at), "ends_at": _iso(campaign.ends_at),
        "stopped_at": _iso(campaign.stopped_at), "weights_updated_at": _iso(campaign.weights_updated_at),
    }


def _iso(value):
    return value.isoformat() if value is not None else None
