"""Differential privacy: contribution bounds, clamping, the ledger, reuse, concurrency."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection

from personalization import privacy
from personalization.errors import BudgetExceeded
from personalization.models import DpRelease, PrivacyBudget

pytestmark = pytest.mark.django_db


def counting_query(key: str, epsilon: float = 1.0, data: list | None = None) -> privacy.Query:
    measurement, scale = privacy.histogram_measurement([0, 1], d_in=1, epsilon=epsilon)
    return privacy.Query(
        query_key=key, statistic="test_counts", parts=[privacy.Measured(measurement, data or [0, 1, 1])], d_in=1,
        mechanism="discrete Laplace", noise_scale=scale, error_bound_95=privacy.accuracy(scale),
        values=lambda outputs: {"0": int(outputs[0][0]), "1": int(outputs[0][1])},
    )


def set_limit(limit: str) -> PrivacyBudget:
    budget = privacy.privacy_budget_get()
    budget.epsilon_limit = Decimal(limit)
    budget.save()
    return budget


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
    assert release.mechanism and release.details["period"] == budget.period
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


def test_budgets_are_per_data_set_and_period():
    set_limit("0.5")
    privacy.dp_release(counting_query("x", epsilon=0.5))
    privacy.dp_release(counting_query("x", epsilon=0.5), dataset="other")
    assert PrivacyBudget.objects.count() == 2
    next_month = privacy.privacy_budget_get(period="2999-01")
    assert next_month.epsilon_spent == 0 and next_month.epsilon_limit == privacy.DEFAULT_EPSILON_LIMIT


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
