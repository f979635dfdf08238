"""The segmentation maths: K-Means, names from centroids, RFM quintiles and profiles, resampled
stability and the choice of k, and the private fit (DP-Lloyd)."""

from __future__ import annotations

import numpy as np
import pytest

from personalization import segmentation


def shop_like(n_per_group: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three kinds of customer in (recency, frequency, monetary, tenure, engagement)."""
    rng = np.random.default_rng(seed)
    loyal = np.column_stack([rng.uniform(1, 15, n_per_group), rng.integers(15, 40, n_per_group),
                             rng.uniform(2000, 6000, n_per_group), rng.uniform(300, 700, n_per_group),
                             rng.integers(50, 150, n_per_group)])
    lapsed = np.column_stack([rng.uniform(200, 360, n_per_group), rng.integers(1, 3, n_per_group),
                              rng.uniform(20, 120, n_per_group), rng.uniform(300, 700, n_per_group),
                              rng.integers(0, 5, n_per_group)])
    new = np.column_stack([rng.uniform(1, 20, n_per_group), rng.integers(1, 2, n_per_group),
                           rng.uniform(20, 100, n_per_group), rng.uniform(1, 25, n_per_group),
                           rng.integers(3, 15, n_per_group)])
    return np.vstack([loyal, lapsed, new]), np.repeat([0, 1, 2], n_per_group)


def test_k_is_chosen_by_silhouette_and_the_groups_are_recovered():
    from sklearn.metrics import adjusted_rand_score

    raw, truth = shop_like()
    result = segmentation.fit(raw, seed=1, k_range=(2, 6))
    assert result.k == 3
    assert result.k_scores[3] == max(result.k_scores.values()) == result.silhouette
    assert adjusted_rand_score(truth, result.labels) > 0.95
    assert sorted(result.sizes) == [300, 300, 300] and result.davies_bouldin < 1


def test_segments_are_named_from_their_centroids():
    raw, _ = shop_like()
    result = segmentation.fit(raw, seed=1, k_range=(3, 3))
    by_name = dict(zip(result.names, result.centroids))
    assert set(result.names) == {"High-value loyal", "Hibernating", "New"}
    assert by_name["High-value loyal"]["monetary"] > 1000
    assert by_name["Hibernating"]["recency_days"] > 150
    assert by_name["New"]["tenure_days"] < 30
    assert result.names[0] == "High-value loyal"  # index 0 is the highest spend


def test_names_are_unique_whatever_the_centroids():
    centroids = np.zeros((8, 5))
    names = segmentation.segment_names(centroids)
    assert len(set(names)) == 8


def test_members_are_assigned_as_the_fit_did():
    raw, _ = shop_like()
    result = segmentation.fit(raw, seed=3, k_range=(2, 5))
    assert (segmentation.assign(raw, result.model) == result.labels).mean() > 0.99


def test_rfm_quintile_scores():
    raw, _ = shop_like()
    result = segmentation.fit(raw, seed=3, k_range=(3, 3))
    scores = segmentation.rfm_scores(raw, result.model)
    assert scores.min() >= 1 and scores.max() <= 5
    best_recent = np.argmin(raw[:, 0])
    assert scores[best_recent, 0] == 5  # the most recent buyer gets R=5
    richest = np.argmax(raw[:, 2])
    assert scores[richest, 2] == 5
    for column in (0, 2):  # continuous values split into five equal groups
        counts = np.bincount(scores[:, column], minlength=6)[1:]
        assert counts.min() >= 170 and counts.max() <= 190


def test_silhouette_is_estimated_on_a_sample_for_large_populations():
    raw, _ = shop_like(n_per_group=1000)
    result = segmentation.fit(raw, seed=1, k_range=(2, 4), silhouette_sample=500)
    assert result.silhouette_sample == 500 and result.k == 3


def test_stability_is_measured_by_resampling_the_customers():
    """Real groups come back on other samples of the customers; a split of structureless data
    does not, even though re-seeding K-Means on the same rows would repeat it."""
    raw, _ = shop_like()
    assert segmentation.resampled_stability(raw, 3, [1, 2, 3]) > 0.95
    noise = np.random.default_rng(0).uniform(1, 100, size=(900, 5))
    assert segmentation.resampled_stability(noise, 3, [1, 2, 3]) < segmentation.STABLE_ARI


def test_k_is_chosen_by_stability_and_silhouette_and_is_at_least_the_useful_minimum():
    raw, truth = shop_like()
    choice = segmentation.choose_k(raw, [1, 2, 3], k_range=(3, 6))
    assert choice.k == 3 and set(choice.by_k) == {3, 4, 5, 6}
    assert all({"silhouette", "stability_ari"} == set(v) for v in choice.by_k.values())
    two_groups = raw[truth < 2]  # silhouette alone would pick 2, which is below the useful minimum
    assert segmentation.choose_k(two_groups, [1, 2, 3]).k >= segmentation.MIN_USEFUL_K


def test_rfm_profile_per_segment():
    raw, truth = shop_like(n_per_group=50)
    profiles = segmentation.rfm_profile(raw, truth, 3)
    assert [p["share"] for p in profiles] == [pytest.approx(1 / 3, abs=1e-3)] * 3
    loyal, lapsed = profiles[0], profiles[1]
    assert loyal["monetary"]["mean"] > 10 * lapsed["monetary"]["mean"]
    assert loyal["recency_days"]["median"] < lapsed["recency_days"]["median"]
    assert loyal["frequency"]["mean"] == pytest.approx(raw[truth == 0, 1].mean(), abs=0.01)


# --- the private fit (DP-Lloyd) ---------------------------------------------------------------------


def test_the_private_fit_costs_exactly_its_planned_epsilon():
    from personalization import dp_mechanisms

    plan = dp_mechanisms.dp_lloyd_plan(k=4, epsilon=0.4)
    assert 0.399 <= dp_mechanisms.plan_epsilon(plan) <= 0.4 + 1e-9
    # Every measurement bounds one person to one row: two rows would cost twice as much.
    assert all(m.map(2) == pytest.approx(2 * m.map(1)) for m in plan.measurements())


def test_the_private_fit_finds_real_groups_from_noisy_outputs_only():
    from sklearn.metrics import adjusted_rand_score

    from personalization import dp_mechanisms

    raw, truth = shop_like(n_per_group=1000, seed=3)
    plan = dp_mechanisms.dp_lloyd_plan(k=3, epsilon=0.4)
    for seed in (1, 2, 3):
        model, names, centroids = segmentation.describe(dp_mechanisms.dp_lloyd_fit(raw, plan, seed=seed))
        assert model["space"] == "unit" and len(names) == len(set(names)) == 3
        assert adjusted_rand_score(truth, segmentation.assign(raw, model)) > 0.45
        # Value order: the first segment spends most, and its centroid is in original units
        # (standardized ones are single digits). Where it lands is the noise's business: the
        # big spenders average ~3,900, and over 330 fits the top centroid ranged 187-8,000+.
        assert centroids[0]["monetary"] == max(c["monetary"] for c in centroids) > 50
        cuts = model["rfm_cuts"]["monetary"]
        assert cuts == sorted(cuts) and len(cuts) == 4


def test_too_few_profiles_are_refused():
    with pytest.raises(segmentation.NotEnoughData):
        segmentation.fit(np.ones((30, 5)))
    with pytest.raises(segmentation.NotEnoughData):
        segmentation.fit(np.arange(25).reshape(5, 5))


def test_a_constant_feature_does_not_break_scaling():
    raw, _ = shop_like()
    raw[:, 2] = 0.0  # no purchases at all (MovieLens)
    result = segmentation.fit(raw, seed=1, k_range=(2, 4))
    assert np.isfinite(result.silhouette) and np.isfinite(np.asarray(result.model["centroids"])).all()


def test_the_silhouette_from_one_distance_matrix_matches_scikit_learn():
    from sklearn.metrics import pairwise_distances, silhouette_score

    raw, _ = shop_like(n_per_group=100)
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 4, len(raw))
    labels[0] = 5  # a cluster of one scores 0, as in scikit-learn (index 4 stays empty)
    distances = pairwise_distances(raw).astype(np.float32)
    assert segmentation.silhouette(distances, labels) == pytest.approx(silhouette_score(raw, labels), abs=1e-5)


def test_k_is_chosen_on_a_sample_and_refitted_on_everyone():
    raw, truth = shop_like(n_per_group=2000)
    result = segmentation.fit(raw, seed=2, k_range=(2, 5), selection_sample=900, silhouette_sample=300)
    assert result.k == 3 and len(result.labels) == 6000 and result.silhouette_sample == 300
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(truth, result.labels) > 0.95
