"""Differentially private releases and the privacy-budget ledger: the only place budget is spent.

The boundary. Operators with database access are inside it and may see exact figures (a
run's internal counts in the admin). Everything that leaves it (the API, the compliance
console, /ops/, exports, webhooks, logs) is a release made here or is not about people:
no exact count of people is logged, served or shown beside a release of the same quantity.

Segment sizes, total and average spend per segment, and consent rates per purpose leave
Tessera only as outputs of OpenDP measurements, each with a bounded per-person
contribution (rows per person in the input) and clamped values. Every release is debited
from the data set's lifetime PrivacyBudget row under a row lock: its total ε (and δ) is
never reset, and a release that would pass the lifetime cap, or this month's pace
(PrivacyBudgetPeriod: months only pace spending), is refused. Only a compliance officer
changes a cap, with a reason that is recorded (privacy_budget_limits_change). OpenDP's
own accounting lives in memory and dies with the process, the ledger does not. The same
question (`query_key`) is answered once: asking again returns the stored release and
costs nothing, so noise cannot be averaged away.

Reads segment memberships, features (spend) and consent states through consent.policy;
writes DpRelease and PrivacyBudget rows holding noisy values only. Raw figures stay in
local variables of this module and are never stored, returned or logged.

A caveat the numbers carry: the guarantee treats the segmentation (its centroids) as
fixed when the statistics are released. The centroids are fitted without noise and are
therefore never published.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_UP, Decimal

import numpy as np
import opendp.prelude as dp
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from cdp.core.errors import ApplicationError
from cdp.models import Profile, ProfileStatus
from consent import policy
from consent.policy import PURPOSES
from consent.services.access import operator_action_event
from personalization import dp_mechanisms
from personalization import segmentation as segmentation_space
from personalization.dp_mechanisms import clamped_sum_measurement, clamped_sum_transformation, histogram_measurement
from personalization.errors import BudgetExceeded
from personalization.models import (
    DpRelease,
    Prediction,
    PrivacyBudget,
    PrivacyBudgetChange,
    PrivacyBudgetPeriod,
    ProfileFeatures,
    Segment,
    Segmentation,
    SegmentMembership,
)
from personalization.services.pipeline import pipeline_counts_add, pipeline_warning_add

dp.enable_features("contrib")
logger = logging.getLogger(__name__)

DATASET = "customers"
# The lifetime budget of a data set: ε spent over its whole life never exceeds the cap, and
# nothing resets it. Each calendar month may spend at most the pace, so the cap lasts (10
# months at full pace). A compliance officer may change either, with a reason, which is
# recorded (privacy_budget_limits_change).
DEFAULT_EPSILON_LIMIT = Decimal("10")
DEFAULT_PERIOD_EPSILON_LIMIT = Decimal("1")
EPSILON = {"segment_definition": 0.4, "segment_sizes": 0.1, "segment_total_spend": 0.2, "consent_rates": 0.1,
           "predictions": 0.1}
# One person's spend counts at most this much (in cents) towards a segment's total.
SPEND_UPPER_CENTS = 2_000_00
ALPHA = 0.05  # error bounds hold with probability 1 − ALPHA
_EPSILON_QUANTUM = Decimal("0.000001")
_DELTA_QUANTUM = Decimal("1e-15")


@dataclass
class Measured:
    """One OpenDP measurement with the data it will run on (which never leaves here)."""

    measurement: dp.Measurement
    data: list
    label: str = ""


@dataclass
class Query:
    """A release to make: measurements over disjoint parts (`parallel`) or one measurement."""

    query_key: str
    statistic: str
    parts: list[Measured]
    d_in: int                                # rows one person may contribute: the bound
    mechanism: str
    noise_scale: float
    error_bound_95: float
    values: Callable[[list], dict]           # noisy outputs → the stored values
    parallel: bool = False
    clamp: tuple[float, float] | None = None
    details: dict = field(default_factory=dict)
    delta: float = 0.0                       # 0: a pure ε-DP mechanism
    # An adaptive procedure (each measurement's input depends on earlier noisy outputs):
    # run instead of the parts, which then only declare what it measures (their maps add up).
    adaptive: Callable[[], list] | None = None
    segmentation: Segmentation | None = None
    run_id: int | None = None


# --- the ledger ---------------------------------------------------------------------------------


LIMITS = ("epsilon_limit", "period_epsilon_limit", "delta_limit")


def budget_period(now=None) -> str:
    return (now or timezone.now()).strftime("%Y-%m")


def privacy_budget_get(*, dataset: str = DATASET) -> PrivacyBudget:
    """The data set's lifetime ledger, opened with the default caps on first use."""
    try:
        with transaction.atomic():
            budget, _ = PrivacyBudget.objects.get_or_create(dataset=dataset, defaults={
                "epsilon_limit": DEFAULT_EPSILON_LIMIT, "period_epsilon_limit": DEFAULT_PERIOD_EPSILON_LIMIT})
    except IntegrityError:  # created concurrently
        budget = PrivacyBudget.objects.get(dataset=dataset)
    return budget


def query_epsilon(query: Query) -> float:
    """ε the query costs, from OpenDP's privacy maps at the contribution bound.

    Parallel parts cover disjoint people (one segment per person), so their cost is the
    largest part's, not the sum (parallel composition).
    """
    costs = [float(part.measurement.map(query.d_in)) for part in query.parts]
    return max(costs) if query.parallel else sum(costs)


def _debit(value: float, places: Decimal) -> Decimal:
    return Decimal(repr(value)).quantize(places, rounding=ROUND_UP)


def _refusal(budget: PrivacyBudget, period: PrivacyBudgetPeriod, epsilon: Decimal, delta: Decimal) -> str | None:
    """Why the ledger cannot pay (epsilon, delta) now, or None when it can."""
    if budget.epsilon_spent + epsilon > budget.epsilon_limit:
        return (f"the lifetime privacy budget of {budget.dataset} cannot pay ε={epsilon.normalize()} "
                f"({budget.epsilon_spent.normalize()} of {budget.epsilon_limit.normalize()} spent, ever)")
    if budget.delta_spent + delta > budget.delta_limit:
        return (f"the lifetime δ of {budget.dataset} cannot pay δ={delta.normalize()} "
                f"({budget.delta_spent.normalize()} of {budget.delta_limit.normalize()} spent)")
    if period.epsilon_spent + epsilon > budget.period_epsilon_limit:
        spent = Decimal(period.epsilon_spent)  # an int on a period row just created
        return (f"{period.period}'s pace for {budget.dataset} cannot pay ε={epsilon.normalize()} "
                f"({spent.normalize()} of {budget.period_epsilon_limit.normalize()} this month)")
    return None


def dp_release(query: Query, *, dataset: str = DATASET, at=None) -> DpRelease:
    """Answer the query once: debit the ledger, run the measurements, store noisy values.

    Reads and writes PrivacyBudget (locked: one release at a time per data set) and its
    period row, and DpRelease; the raw data in `query` is consumed by the measurements and
    dropped. Raises BudgetExceeded (storing nothing and charging nothing) when the release
    would pass the lifetime cap (ε or δ) or the period's pace. `at` is the time the release
    is paid at (now by default); it names the period.
    """
    existing = DpRelease.objects.filter(dataset=dataset, query_key=query.query_key).first()
    if existing is not None:
        return existing
    epsilon = query_epsilon(query)
    debit = _debit(epsilon, _EPSILON_QUANTUM)
    delta = _debit(query.delta, _DELTA_QUANTUM)
    period_name = budget_period(at)
    budget = privacy_budget_get(dataset=dataset)
    with transaction.atomic():
        budget = PrivacyBudget.objects.select_for_update().get(pk=budget.pk)
        # Checked again under the lock: a concurrent twin may have paid for it meanwhile.
        existing = DpRelease.objects.filter(dataset=dataset, query_key=query.query_key).first()
        if existing is not None:
            return existing
        # Created under the budget's lock, so two releases never race to open a period.
        period, _ = PrivacyBudgetPeriod.objects.get_or_create(budget=budget, period=period_name)
        refusal = _refusal(budget, period, debit, delta)
        if refusal is None:
            outputs = query.adaptive() if query.adaptive else [part.measurement(part.data) for part in query.parts]
            release = DpRelease.objects.create(
                budget=budget, dataset=dataset, query_key=query.query_key, statistic=query.statistic,
                segmentation=query.segmentation, run_id=query.run_id, values=query.values(outputs),
                epsilon=epsilon, delta=float(delta), period=period_name, mechanism=query.mechanism,
                noise_scale=query.noise_scale, error_bound_95=query.error_bound_95, contribution_bound=query.d_in,
                clamp_lower=query.clamp[0] if query.clamp else None,
                clamp_upper=query.clamp[1] if query.clamp else None,
                details={**query.details, "period": period_name, "epsilon_debited": str(debit),
                         "composition": "parallel over disjoint parts" if query.parallel else "single"},
            )
            if at is not None:
                DpRelease.objects.filter(pk=release.pk).update(created_at=at)
            PrivacyBudget.objects.filter(pk=budget.pk).update(
                epsilon_spent=F("epsilon_spent") + debit, delta_spent=F("delta_spent") + delta,
                releases=F("releases") + 1, updated_at=timezone.now())
            PrivacyBudgetPeriod.objects.filter(pk=period.pk).update(
                epsilon_spent=F("epsilon_spent") + debit, releases=F("releases") + 1)
    if refusal is not None:
        PrivacyBudget.objects.filter(pk=budget.pk).update(refusals=F("refusals") + 1)
        PrivacyBudgetPeriod.objects.filter(pk=period.pk).update(refusals=F("refusals") + 1)
        logger.warning("dp_release_refused", extra={"dataset": dataset, "query": query.query_key,
                                                    "epsilon": epsilon, "period": period_name})
        raise BudgetExceeded(f"Not released: {refusal}.")
    logger.info("dp_released", extra={"dataset": dataset, "query": query.query_key, "epsilon": epsilon})
    return release


@transaction.atomic
def privacy_budget_limits_change(*, dataset: str, actor: str, reason: str, **limits) -> list[PrivacyBudgetChange]:
    """A compliance officer's change of a lifetime cap (ε or δ) or of the monthly pace.

    Needs a reason; a cap can never fall below what has already been spent (spending is
    never undone). Each changed limit is recorded as a PrivacyBudgetChange and as an
    operator action in the access log. The caller checks the compliance role.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("Give a reason for changing the privacy budget.", code="reason_required")
    unknown = set(limits) - set(LIMITS)
    if unknown:
        raise ApplicationError(f"Unknown limit: {', '.join(sorted(unknown))}.", code="invalid_limit")
    budget = PrivacyBudget.objects.select_for_update().filter(dataset=dataset).first()
    if budget is None:  # budgets are opened by their first release, never by a form
        raise ApplicationError(f"No privacy budget is open for {dataset[:64]}.", code="unknown_budget")
    floors = {"epsilon_limit": budget.epsilon_spent, "delta_limit": budget.delta_spent, "period_epsilon_limit": 0}
    changes = []
    now = timezone.now()
    for name, value in limits.items():
        if value is None:
            continue
        value = Decimal(str(value))
        if not value.is_finite() or value < floors[name] or (name != "delta_limit" and value <= 0):
            raise ApplicationError(f"{name} must be a positive number, at least what has been spent "
                                   f"({floors[name].normalize()}).", code="invalid_limit")
        old = getattr(budget, name)
        if value == old:
            continue
        setattr(budget, name, value)
        changes.append(PrivacyBudgetChange(budget=budget, at=now, actor=actor[:200], limit=name, old_value=old,
                                           new_value=value, reason=reason))
    if changes:
        budget.save(update_fields=[c.limit for c in changes] + ["updated_at"])
        PrivacyBudgetChange.objects.bulk_create(changes)
        operator_action_event(actor=actor, action="privacy_budget_changed", detail={
            "dataset": dataset, "reason": reason[:500],
            "changes": {c.limit: [str(c.old_value.normalize()), str(c.new_value.normalize())] for c in changes}})
    return changes


def derived_release(*, query_key: str, statistic: str, values: dict, parents: list[DpRelease],
                    mechanism: str, error_bound_95: float, details: dict | None = None,
                    segmentation: Segmentation | None = None, run_id: int | None = None,
                    dataset: str = DATASET) -> DpRelease:
    """A figure computed only from released noisy values (post-processing): ε = 0."""
    existing = DpRelease.objects.filter(dataset=dataset, query_key=query_key).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return DpRelease.objects.create(
                budget=parents[0].budget, dataset=dataset, query_key=query_key, statistic=statistic,
                segmentation=segmentation, run_id=run_id, values=values, epsilon=0.0, period=parents[0].period,
                mechanism=mechanism, noise_scale=None, error_bound_95=error_bound_95,
                contribution_bound=max(p.contribution_bound for p in parents),
                details={**(details or {}), "post_processing_of": [p.id for p in parents]})
    except IntegrityError:
        return DpRelease.objects.get(dataset=dataset, query_key=query_key)


# --- measurements ---------------------------------------------------------------------------------


def spend_sum_transformation(upper_cents: int = SPEND_UPPER_CENTS) -> dp.Transformation:
    """One person's spend (cents) clamped to [0, upper], summed: stability = upper per row."""
    return clamped_sum_transformation(upper_cents)


def spend_sum_measurement(*, epsilon: float, upper_cents: int = SPEND_UPPER_CENTS) -> tuple[dp.Measurement, float]:
    return clamped_sum_measurement(epsilon=epsilon, upper=upper_cents)


def accuracy(scale: float) -> float:
    """95% bound on |noise| for discrete Laplace noise of this scale."""
    return float(dp.discrete_laplacian_scale_to_accuracy(scale=scale, alpha=ALPHA))


def ratio_error_bound(numerator: float, numerator_scale: float, denominator: float, denominator_scale: float,
                      *, seed: int = 0, draws: int = 20_000) -> float:
    """95% bound on the error of a ratio of two noisy values, by simulating their noise.

    Uses only released values and public scales (post-processing): no privacy cost.
    """
    if denominator <= 0:
        return float("inf")
    rng = np.random.default_rng(seed)
    num = numerator - rng.laplace(0.0, numerator_scale, draws)
    den = np.maximum(denominator - rng.laplace(0.0, denominator_scale, draws), 1.0)
    return float(np.quantile(np.abs(numerator / denominator - num / den), 1 - ALPHA))


# --- the statistics ---------------------------------------------------------------------------------


def _members(segmentation: Segmentation) -> tuple[list, list[int], dict]:
    """(profile ids, segment index per id, index → segment id) of people still allowing analytics."""
    rows = list(SegmentMembership.objects.filter(segmentation=segmentation)
                .values_list("profile_id", "segment__index").order_by("profile_id"))
    allowed = policy.allowed([pid for pid, _ in rows], "analytics")
    rows = [(pid, index) for pid, index in rows if pid in allowed]
    segments = dict(Segment.objects.filter(segmentation=segmentation).values_list("index", "id"))
    return [pid for pid, _ in rows], [index for _, index in rows], segments


def segment_definition_release(*, matrix: np.ndarray, k: int, seed: int, run_id: int | None = None) -> DpRelease:
    """Segment definitions (centroids and RFM cut points) fitted by DP-Lloyd on the rows of
    `matrix` (one per analytics-allowed person): ε is the sum of the plan's maps at one row
    per person. k and the starting centroids are public; names and centroids in original
    units are post-processing of the stored model (segmentation.describe)."""
    plan = dp_mechanisms.dp_lloyd_plan(k=k, epsilon=EPSILON["segment_definition"])
    sums_bound = accuracy(plan.sums_scale) / segmentation_space.GRID
    return dp_release(Query(
        query_key=f"run:{run_id}:segment_definition", statistic="segment_definition",
        parts=[Measured(m, []) for m in plan.measurements()], d_in=1,
        adaptive=lambda: [dp_mechanisms.dp_lloyd_fit(matrix, plan, seed=seed)],
        mechanism=f"DP-Lloyd k-means, {plan.iterations} iterations of discrete Laplace counts and clamped sums per "
                  "segment; RFM cut points from noisy histograms (OpenDP)",
        noise_scale=plan.sums_scale / segmentation_space.GRID, error_bound_95=sums_bound,
        values=lambda outputs: outputs[0],
        details={"k": k, "iterations": plan.iterations, "shares": dp_mechanisms.SHARES,
                 "counts_scale": plan.counts_scale, "rfm_histogram_scale": plan.rfm_scale,
                 "feature_upper_bounds": segmentation_space.UPPER,
                 "error_bound_applies_to": "each feature's sum per segment in unit space (divide by the "
                                           "segment's size for its centroid)"},
        run_id=run_id,
    ))


def segment_definition_latest() -> DpRelease | None:
    """The newest released segment definition: reused, free, when the budget cannot pay a new one."""
    return DpRelease.objects.filter(dataset=DATASET, statistic="segment_definition").order_by("-created_at").first()


def segment_sizes_release(*, segmentation: Segmentation, run_id: int | None = None) -> DpRelease:
    """Members per segment; one row per person (one segment each): contribution bound 1."""
    epsilon = EPSILON["segment_sizes"]
    _, labels, segments = _members(segmentation)
    categories = sorted(segments)
    measurement, scale = histogram_measurement(categories, d_in=1, epsilon=epsilon)
    return dp_release(Query(
        query_key=f"segmentation:{segmentation.id}:sizes", statistic="segment_sizes",
        parts=[Measured(measurement, labels)], d_in=1,
        mechanism="discrete Laplace on counts by segment (OpenDP count_by_categories + laplace)",
        noise_scale=scale, error_bound_95=accuracy(scale),
        values=lambda outputs: {str(segments[c]): max(0, int(v)) for c, v in zip(categories, outputs[0])},
        segmentation=segmentation, run_id=run_id,
    ))


def segment_spend_release(*, segmentation: Segmentation, run_id: int | None = None) -> DpRelease:
    """Total spend per segment: each person's run total clamped to [0, SPEND_UPPER], one row
    per person, one segment per person (parallel composition over the segments)."""
    epsilon = EPSILON["segment_total_spend"]
    ids, labels, segments = _members(segmentation)
    # The run's features exist only for analytics-allowed people; members are a subset.
    spend = dict(ProfileFeatures.objects.filter(run_id=segmentation.run_id).values_list("profile_id", "monetary"))
    by_segment: dict[int, list[int]] = {index: [] for index in segments}
    for pid, index in zip(ids, labels):
        by_segment[index].append(int(round(float(spend.get(pid, 0)) * 100)))
    measurement, scale = spend_sum_measurement(epsilon=epsilon)
    categories = sorted(segments)
    return dp_release(Query(
        query_key=f"segmentation:{segmentation.id}:total_spend", statistic="segment_total_spend",
        parts=[Measured(measurement, by_segment[c], label=str(segments[c])) for c in categories], d_in=1,
        parallel=True, clamp=(0.0, SPEND_UPPER_CENTS / 100),
        mechanism="discrete Laplace on clamped sum of spend per segment (OpenDP clamp + sum + laplace)",
        noise_scale=scale / 100, error_bound_95=accuracy(scale) / 100,
        values=lambda outputs: {str(segments[c]): round(max(0, v) / 100, 2) for c, v in zip(categories, outputs)},
        details={"unit": "currency", "per_person_clamp_cents": [0, SPEND_UPPER_CENTS]},
        segmentation=segmentation, run_id=run_id,
    ))


def segment_average_spend_release(*, sizes: DpRelease, totals: DpRelease) -> DpRelease:
    """Average spend = noisy total / noisy size: post-processing, no budget."""
    values, bounds = {}, {}
    for segment_id, size in sizes.values.items():
        total = totals.values.get(segment_id, 0.0)
        values[segment_id] = round(total / size, 2) if size > 0 else None
        bounds[segment_id] = round(ratio_error_bound(total, totals.noise_scale, size, sizes.noise_scale), 2) \
            if size > 0 else None
    finite = [b for b in bounds.values() if b is not None]
    return derived_release(
        query_key=f"segmentation:{sizes.segmentation_id}:average_spend", statistic="segment_average_spend",
        values=values, parents=[sizes, totals], mechanism="post-processing: noisy total / noisy size",
        error_bound_95=max(finite) if finite else 0.0, details={"error_bound_95_per_segment": bounds},
        segmentation=sizes.segmentation, run_id=sizes.run_id,
    )


def consent_rates_release(*, day: str | None = None, run_id: int | None = None) -> DpRelease:
    """Share of active profiles allowing each purpose, released once per day.

    Each person contributes one row to the population count and one per purpose allowed:
    at most 1 + len(PURPOSES) rows, the contribution bound OpenDP's map is evaluated at.
    """
    day = day or timezone.now().date().isoformat()
    query_key = f"consent_rates:{day}"
    existing = DpRelease.objects.filter(dataset=DATASET, query_key=query_key).first()
    if existing is not None:
        return existing
    epsilon = EPSILON["consent_rates"]
    ids = list(Profile.objects.filter(status=ProfileStatus.ACTIVE).values_list("id", flat=True))
    rows = [0] * len(ids)
    for code, purpose in enumerate(PURPOSES, start=1):
        rows += [code] * len(policy.allowed(ids, purpose))
    categories = list(range(len(PURPOSES) + 1))
    d_in = len(categories)
    measurement, scale = histogram_measurement(categories, d_in=d_in, epsilon=epsilon)

    def values(outputs: list) -> dict:
        counts = [max(0, int(v)) for v in outputs[0]]
        population = counts[0]
        result = {"population": population}
        for code, purpose in enumerate(PURPOSES, start=1):
            rate = min(1.0, counts[code] / population) if population else None
            result[purpose] = {
                "count": counts[code], "rate": round(rate, 4) if rate is not None else None,
                "rate_error_95": round(ratio_error_bound(counts[code], scale, population, scale), 4)
                if population else None,
            }
        return result

    return dp_release(Query(
        query_key=query_key, statistic="consent_rates", parts=[Measured(measurement, rows)], d_in=d_in,
        mechanism="discrete Laplace on counts by purpose (OpenDP count_by_categories + laplace)",
        noise_scale=scale, error_bound_95=accuracy(scale), values=values,
        details={"purposes": list(PURPOSES), "error_bound_applies_to": "counts"}, run_id=run_id,
    ))


def statistics_release_for_run(*, run_id: int) -> dict:
    """The pipeline's release stage: segment statistics of the run's segmentation and
    today's consent rates. A release the budget refuses is skipped and reported, not fatal."""
    outcome = {"released": [], "refused": []}
    segmentation = Segmentation.objects.filter(run_id=run_id).first()
    steps: list[tuple[str, Callable[[], DpRelease]]] = []
    if segmentation is not None:
        steps += [("segment_sizes", lambda: segment_sizes_release(segmentation=segmentation, run_id=run_id)),
                  ("segment_total_spend", lambda: segment_spend_release(segmentation=segmentation, run_id=run_id))]
    steps.append(("consent_rates", lambda: consent_rates_release(run_id=run_id)))
    if Prediction.objects.filter(run_id=run_id).exists():
        from personalization.predictive.releases import predictions_release

        steps.append(("predictions", lambda: predictions_release(run_id=run_id)))
    made: dict[str, DpRelease] = {}
    for name, release in steps:
        try:
            made[name] = release()
            outcome["released"].append(name)
        except BudgetExceeded as refusal:
            outcome["refused"].append(name)
            pipeline_warning_add(run_id=run_id, stage="releases", code=refusal.code, message=refusal.message)
    if "segment_sizes" in made and "segment_total_spend" in made:
        segment_average_spend_release(sizes=made["segment_sizes"], totals=made["segment_total_spend"])
        outcome["released"].append("segment_average_spend")
    pipeline_counts_add(run_id=run_id, dp_releases=outcome)
    return outcome
