"""Differential privacy: contribution bounds, clamping, the lifetime ledger and its pace, reuse,
concurrency, cap changes, and an empirical check of the guarantee."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection

from cdp.core.errors import ApplicationError
from consent.models import AccessKind, AccessLog
from personalization import privacy
from personalization.errors import BudgetExceeded
from personalization.models import DpRelease, PrivacyBudget, PrivacyBudgetChange, PrivacyBudgetPeriod

pytestmark = pytest.mark.django_db


def counting_query(key: str, epsilon: float = 1.0, data: list | None = None) -> privacy.Query:
    measurement, scale = privacy.histogram_measurement([0, 1], d_in=1, epsilon=epsilon)
    return privacy.Query(
        query_key=key, statistic="test_counts", parts=[privacy.Measured(measurement, data or [0, 1, 1])], d_in=1,
        mechanism="discrete Laplace", noise_scale=scale, error_bound_95=privacy.accuracy(scale),
        values=lambda outputs: {"0": int(outputs[0][0]), "1": int(outputs[0][1])},
    )


def set_limit(limit: str, pace: str | None = None) -> PrivacyBudget:
    """Caps set as the test's arrangement (a real change goes through privacy_budget_limits_change)."""
    budget = privacy.privacy_budget_get()
    budget.epsilon_limit = Decimal(limit)
    budget.period_epsilon_limit = Decimal(pace or limit)
    budget.save()
    return budget


JANUARY, FEBRUARY, MARCH = (datetime(2031, month, 15, tzinfo=UTC) for month in (1, 2, 3))


# --- measurements: the contribution bound and the clamp --------------------------------------------


def test_the_spend_sum_clamps_each_person_before_any_noise():
    total = privacy.spend_sum_transformation(upper_cents=200_000)
    # A whale, a negative refund artefact and an ordinary customer (cents).
    assert total([10**9, -3_000, 5_000]) == 200_000 + 0 + 5_000
    # Stability: one person more or less moves the pre-noise sum by at most the clamp.
    assert total.map(1) == 200_000 and total.map(2) == 400_000


def test_the_spend_measurement_privacy_map_is_epsilon_at_one_row_per_person():
    measurement, scale = privacy.spend_sum_measurement(epsilon=0.4, upper_cents=200_000)
    assert measurement.map(1) <= 0.4 + 1e-12
    assert measurement.map(1) > 0.39
    # Two rows per person would cost twice as much: the bound is what the map is evaluated at.
    assert measurement.map(2) == pytest.approx(2 * measurement.map(1))
    assert scale == pytest.approx(200_000 / 0.4, rel=1e-6)


def test_the_segment_size_histogram_charges_per_row_a_person_adds():
    measurement, scale = privacy.histogram_measurement([0, 1, 2], d_in=1, epsilon=0.1)
    assert measurement.map(1) == pytest.approx(0.1)
    assert measurement.map(3) == pytest.approx(0.3)
    consent, consent_scale = privacy.histogram_measurement(list(range(6)), d_in=6, epsilon=0.1)
    assert consent.map(6) <= 0.1 + 1e-12 and consent.map(7) > 0.1  # six rows per person, at most
    assert consent_scale == pytest.approx(6 * scale / 1, rel=1e-6)


def test_error_bounds_are_the_95_percent_quantile_of_the_noise():
    import numpy as np

    scale = 10.0
    bound = privacy.accuracy(scale)
    noise = np.random.default_rng(1).laplace(0, scale, 200_000)
    assert abs(np.mean(np.abs(noise) <= bound) - 0.95) < 0.01


# --- the ledger ------------------------------------------------------------------------------------


def test_a_release_is_debited_and_records_what_it_cost():
    release = privacy.dp_release(counting_query("q1", epsilon=0.5))
    budget = PrivacyBudget.objects.get()
    assert budget.epsilon_spent == Decimal("0.5") and budget.releases == 1
    assert release.epsilon == pytest.approx(0.5) and release.contribution_bound == 1
    assert release.noise_scale == pytest.approx(2.0) and release.error_bound_95 > 0
    assert release.mechanism and release.details["period"] == release.period == privacy.budget_period()
    assert PrivacyBudgetPeriod.objects.get(budget=budget).epsilon_spent == Decimal("0.5")
    assert set(release.values) == {"0", "1"}


def test_the_same_question_is_answered_once_and_paid_once():
    first = privacy.dp_release(counting_query("same", epsilon=0.5))
    again = privacy.dp_release(counting_query("same", epsilon=0.5, data=[0] * 1000))
    assert again.id == first.id and again.values == first.values
    assert PrivacyBudget.objects.get().epsilon_spent == Decimal("0.5")


def test_the_ledger_refuses_a_release_past_its_limit():
    set_limit("1.0")
    privacy.dp_release(counting_query("a", epsilon=0.6))
    with pytest.raises(BudgetExceeded) as refused:
        privacy.dp_release(counting_query("b", epsilon=0.6))
    assert refused.value.code == "privacy_budget_exceeded"
    budget = PrivacyBudget.objects.get()
    assert budget.epsilon_spent == Decimal("0.6") and budget.refusals == 1
    assert not DpRelease.objects.filter(query_key="b").exists()
    privacy.dp_release(counting_query("c", epsilon=0.4))  # what is left can still be spent
    assert PrivacyBudget.objects.get().epsilon_spent == Decimal("1.0")


def test_budgets_are_per_data_set_and_for_life():
    set_limit("0.5")
    privacy.dp_release(counting_query("x", epsilon=0.5))
    privacy.dp_release(counting_query("x", epsilon=0.5), dataset="other")
    assert PrivacyBudget.objects.count() == 2
    other = PrivacyBudget.objects.get(dataset="other")
    assert other.epsilon_limit == privacy.DEFAULT_EPSILON_LIMIT
    assert other.period_epsilon_limit == privacy.DEFAULT_PERIOD_EPSILON_LIMIT


def test_the_lifetime_cap_holds_across_period_boundaries():
    """A new month brings new pace, never new budget: what was spent stays spent."""
    set_limit("1.0", pace="0.6")
    privacy.dp_release(counting_query("jan-1", epsilon=0.5), at=JANUARY)
    with pytest.raises(BudgetExceeded, match="pace"):
        privacy.dp_release(counting_query("jan-2", epsilon=0.5), at=JANUARY)  # January's pace is used up
    privacy.dp_release(counting_query("feb-1", epsilon=0.5), at=FEBRUARY)  # February paces again...
    with pytest.raises(BudgetExceeded, match="lifetime"):
        privacy.dp_release(counting_query("mar-1", epsilon=0.5), at=MARCH)  # ...but March finds the total spent
    budget = PrivacyBudget.objects.get()
    assert budget.epsilon_spent == Decimal("1.0") and budget.releases == 2 and budget.refusals == 2
    months = dict(PrivacyBudgetPeriod.objects.values_list("period", "epsilon_spent"))
    assert months == {"2031-01": Decimal("0.5"), "2031-02": Decimal("0.5"), "2031-03": Decimal("0")}
    assert set(DpRelease.objects.values_list("period", flat=True)) == {"2031-01", "2031-02"}


def test_a_release_using_delta_needs_a_delta_budget():
    query = counting_query("approximate", epsilon=0.1)
    query.delta = 1e-9
    with pytest.raises(BudgetExceeded, match="δ"):
        privacy.dp_release(query)  # the data set allows pure ε-DP only until a δ cap is set
    privacy.privacy_budget_limits_change(dataset=privacy.DATASET, actor="staff:1", reason="approximate DP counts",
                                         delta_limit=Decimal("1e-6"))
    release = privacy.dp_release(query)
    assert release.delta == pytest.approx(1e-9)
    assert PrivacyBudget.objects.get().delta_spent == Decimal("1e-9")


def test_changing_a_cap_needs_a_reason_is_recorded_and_never_goes_below_what_was_spent():
    set_limit("1.0", pace="5.0")
    privacy.dp_release(counting_query("spent", epsilon=0.8))
    with pytest.raises(ApplicationError) as no_reason:
        privacy.privacy_budget_limits_change(dataset=privacy.DATASET, actor="staff:7", reason="  ",
                                             epsilon_limit=Decimal("2"))
    assert no_reason.value.code == "reason_required"
    with pytest.raises(ApplicationError) as too_low:
        privacy.privacy_budget_limits_change(dataset=privacy.DATASET, actor="staff:7", reason="less",
                                             epsilon_limit=Decimal("0.5"))
    assert too_low.value.code == "invalid_limit"
    with pytest.raises(ApplicationError) as unknown:
        privacy.privacy_budget_limits_change(dataset="made-up", actor="staff:7", reason="typo", epsilon_limit=1)
    assert unknown.value.code == "unknown_budget" and not PrivacyBudget.objects.filter(dataset="made-up").exists()
    assert not PrivacyBudgetChange.objects.exists()

    [change] = privacy.privacy_budget_limits_change(dataset=privacy.DATASET, actor="staff:7",
                                                    reason="DPO approved 2031 reporting", epsilon_limit=Decimal("2"))
    assert (change.limit, change.old_value, change.new_value) == ("epsilon_limit", Decimal("1"), Decimal("2"))
    assert change.reason == "DPO approved 2031 reporting" and change.actor == "staff:7"
    audit = AccessLog.objects.get(kind=AccessKind.OPERATOR_ACTION, purpose="privacy_budget_changed")
    assert audit.detail["reason"] == "DPO approved 2031 reporting" and audit.detail["changes"]["epsilon_limit"]
    privacy.dp_release(counting_query("after", epsilon=0.8))
    assert PrivacyBudget.objects.get().epsilon_spent == Decimal("1.6")


def test_the_database_itself_refuses_an_overspent_ledger():
    from django.db import IntegrityError, transaction

    budget = set_limit("1.0")
    with pytest.raises(IntegrityError), transaction.atomic():
        PrivacyBudget.objects.filter(pk=budget.pk).update(epsilon_spent=Decimal("1.5"))


# --- concurrency (PostgreSQL: real row locks, one connection per thread) ---------------------------


def _in_threads(count: int, work) -> list:
    barrier = threading.Barrier(count)
    outcomes: list = [None] * count

    def run(i: int) -> None:
        try:
            barrier.wait()
            outcomes[i] = work(i)
        except Exception as error:  # recorded, asserted by the test
            outcomes[i] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_releases_never_overspend(postgres):
    set_limit("3.0")
    outcomes = _in_threads(10, lambda i: privacy.dp_release(counting_query(f"concurrent-{i}", epsilon=1.0)))
    made = [o for o in outcomes if isinstance(o, DpRelease)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceeded)]
    assert len(made) == 3 and len(refused) == 7, outcomes
    budget = PrivacyBudget.objects.get()
    assert budget.epsilon_spent == Decimal("3.0") and budget.releases == 3 and budget.refusals == 7
    assert DpRelease.objects.count() == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_twins_of_one_question_pay_once(postgres):
    outcomes = _in_threads(8, lambda i: privacy.dp_release(counting_query("twin", epsilon=0.5)))
    assert all(isinstance(o, DpRelease) for o in outcomes), outcomes
    assert len({o.id for o in outcomes}) == 1
    assert PrivacyBudget.objects.get().epsilon_spent == Decimal("0.5")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_in_two_periods_never_pass_the_lifetime_cap(postgres):
    """Twelve releases racing in two months: each month's pace and the lifetime total both hold."""
    set_limit("3.0", pace="2.0")
    outcomes = _in_threads(12, lambda i: privacy.dp_release(counting_query(f"race-{i}", epsilon=1.0),
                                                             at=JANUARY if i % 2 else FEBRUARY))
    made = [o for o in outcomes if isinstance(o, DpRelease)]
    assert len(made) == 3 and all(isinstance(o, BudgetExceeded) for o in outcomes if o not in made), outcomes
    budget = PrivacyBudget.objects.get()
    assert budget.epsilon_spent == Decimal("3.0") and budget.refusals == 9
    months = list(PrivacyBudgetPeriod.objects.values_list("epsilon_spent", flat=True))
    assert sum(months) == Decimal("3.0") and max(months) <= Decimal("2.0")
    # A later month finds the lifetime budget spent, whatever its pace.
    with pytest.raises(BudgetExceeded, match="lifetime"):
        privacy.dp_release(counting_query("later", epsilon=0.5), at=MARCH)


# --- the guarantee, measured: many releases on neighbouring data sets ---------------------------------


def _tail_loss(a, b, *, z: float = 4.5, least: int = 30) -> tuple[float, float]:
    """(largest observed, largest provable) |log ratio| of tail probabilities P(X ≥ t) and P(X ≤ t)
    between two samples of outputs, over every threshold t both reach.

    "Provable" takes each ratio at the edge of its Wilson intervals least favourable to a
    violation (z = 4.5 covers the ~200 comparisons made together), so sampling error alone
    cannot make it exceed ε; the observed value shows how close the mechanism comes.
    """
    import numpy as np

    def interval(hits: int, n: int) -> tuple[float, float]:
        p = hits / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(centre - half, 1e-12), centre + half

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    observed = provable = 0.0
    for t in np.unique(np.concatenate([a, b])):
        for hits_a, hits_b in ((int((a >= t).sum()), int((b >= t).sum())), (int((a <= t).sum()), int((b <= t).sum()))):
            if min(hits_a, hits_b) < least:
                continue
            observed = max(observed, abs(np.log((hits_a / len(a)) / (hits_b / len(b)))))
            (low_a, high_a), (low_b, high_b) = interval(hits_a, len(a)), interval(hits_b, len(b))
            provable = max(provable, np.log(low_a / high_b), np.log(low_b / high_a))
    return observed, provable


def test_neighbouring_data_sets_are_within_epsilon_empirically():
    """Thousands of releases on data sets one person apart (a whale past the clamp for the
    sum): the tails' log ratio stays within ε up to sampling error, and comes near it."""
    epsilon = 1.0
    counts, _ = privacy.histogram_measurement([0, 1], d_in=1, epsilon=epsilon)
    spend, _ = privacy.spend_sum_measurement(epsilon=epsilon, upper_cents=100)
    cases = [
        ([counts([0, 1, 1])[1] for _ in range(6_000)], [counts([0, 1, 1, 1])[1] for _ in range(6_000)]),
        ([spend([50, 50, 50]) for _ in range(6_000)], [spend([50, 50, 50, 10**6]) for _ in range(6_000)]),
    ]
    for without, with_one_more in cases:
        observed, provable = _tail_loss(without, with_one_more)
        assert provable <= epsilon, (observed, provable)
        assert observed > 0.7 * epsilon  # the test can see a loss of this size: it is not vacuous


def test_the_empirical_check_catches_a_mechanism_with_too_little_noise():
    """The same check on a histogram whose noise is a third of what ε = 1 needs: caught."""
    import opendp.prelude as dp

    space = (dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.symmetric_distance())
    weak = dp.t.make_count_by_categories(*space, categories=[0, 1], null_category=False) \
        >> dp.m.then_laplace(scale=1 / 3)
    _, provable = _tail_loss([weak([0, 1, 1])[1] for _ in range(2_000)], [weak([0, 1, 1, 1])[1] for _ in range(2_000)])
    assert provable > 1.0
