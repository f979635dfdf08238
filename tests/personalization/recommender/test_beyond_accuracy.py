"""Beyond-accuracy metrics on tiny lists whose values are computed by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import sparse

from personalization.recommender import beyond_accuracy as ba


def test_coverage_is_the_share_of_the_catalogue_shown_to_anyone():
    # Items 0, 1, 2 of 5 are shown.
    assert ba.coverage([[0, 1], [1, 2]], 5) == pytest.approx(3 / 5)
    assert ba.coverage([], 5) == 0.0
    assert ba.coverage([[0]], 0) == 0.0


def test_exposure_counts_count_an_item_once_per_list():
    assert ba.exposure_counts([[0, 1], [1, 2], [1, 1]], 4).tolist() == [1, 3, 1, 0]


def test_gini_of_exposure_counts_never_shown_items():
    # Counts [1, 2, 1, 0, 0] sorted [0, 0, 1, 1, 2], sum 4; coefficients 2i − n − 1 = −4, −2, 0, 2, 4:
    # (0 + 0 + 0 + 2·1 + 4·2) / (5·4) = 10 / 20.
    assert ba.exposure_gini([[0, 1], [1, 2]], 5) == pytest.approx(0.5)
    # One item takes everything: (n − 1)/n; all equal: 0; nothing shown: 0.
    assert ba.gini(np.array([0, 0, 0, 5])) == pytest.approx(3 / 4)
    assert ba.gini(np.array([2, 2, 2])) == pytest.approx(0.0)
    assert ba.gini(np.zeros(3)) == 0.0


def test_novelty_is_the_mean_self_information_of_the_recommended_items():
    # 4 people; popularity 4, 2, 1, 0 → −log₂(4/4) = 0, −log₂(2/4) = 1, −log₂(1/4) = 2, and the
    # never-interacted item counts as one person: 2. Lists [0, 1] → 0.5, [2, 3] → 2; mean 1.25.
    popularity = np.array([4, 2, 1, 0])
    assert ba.novelty([[0, 1], [2, 3]], popularity, 4) == pytest.approx(1.25)
    assert ba.novelty([[], [0]], popularity, 4) == pytest.approx(0.0)


def test_item_popularity_counts_people_per_item():
    X = sparse.csr_matrix(np.array([[1, 0, 3], [1, 0, 0], [0, 0, 2]]))
    assert ba.item_popularity(X).tolist() == [2, 0, 2]


def test_intra_list_diversity_with_jaccard_of_categories():
    # Item features: 0 {a, b}, 1 {b}, 2 {c}. Pairs: J(0,1) = 1/2, J(0,2) = 0, J(1,2) = 0 →
    # dissimilarities 0.5, 1, 1, mean 2.5/3. A one-item list has no pairs and is left out.
    features = sparse.csr_matrix(np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]]))
    assert ba.intra_list_diversity([[0, 1, 2], [0]], features) == pytest.approx(2.5 / 3)
    # Two lists: [0, 1] → 0.5, [1, 2] → 1; mean 0.75.
    assert ba.intra_list_diversity([[0, 1], [1, 2]], features) == pytest.approx(0.75)


def test_intra_list_diversity_with_cosine_of_content_vectors():
    # (1, 0) and (1, 1): cosine 1/√2; an all-zero vector is dissimilar to everything.
    vectors = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    assert ba.intra_list_diversity([[0, 1]], vectors, similarity="cosine") == pytest.approx(1 - 1 / math.sqrt(2))
    assert ba.intra_list_diversity([[0, 2]], vectors, similarity="cosine") == pytest.approx(1.0)
    with pytest.raises(ValueError):
        ba.intra_list_diversity([[0, 1]], vectors, similarity="euclid")


def test_popularity_buckets_split_the_interactions_20_60_20():
    # Total 100. Sorted, interactions before each item: 0, 50, 80, 90, 95, 100 → item 0 head
    # (< 20%), item 1 middle (< 80%), items 2–4 (the last 20 interactions) and the unseen 5 tail.
    buckets = ba.popularity_buckets(np.array([50, 30, 10, 5, 5, 0]))
    assert buckets.tolist() == [ba.HEAD, ba.MIDDLE, ba.TAIL, ba.TAIL, ba.TAIL, ba.TAIL]
    assert ba.popularity_buckets(np.zeros(2)).tolist() == [ba.TAIL, ba.TAIL]


def test_jensen_shannon_and_hellinger_by_hand():
    p, q = np.array([1.0, 0, 0]), np.array([0.5, 0.5, 0])
    # m = (.75, .25, 0): KL(p‖m) = log₂(4/3) = 0.41504, KL(q‖m) = ½log₂(2/3) + ½log₂2 = 0.20752.
    assert ba.jensen_shannon(p, q) == pytest.approx(0.5 * (0.415037 + 0.207519), abs=1e-6)
    assert ba.jensen_shannon(p, np.array([0, 1.0, 0])) == pytest.approx(1.0)
    assert ba.jensen_shannon(q, q) == pytest.approx(0.0)
    # √(½((1 − √½)² + ½)) = √0.292893 = 0.541196.
    assert ba.hellinger(p, q) == pytest.approx(0.541196, abs=1e-6)


def test_popularity_miscalibration_compares_history_and_list_mixes():
    buckets = np.array([ba.HEAD, ba.MIDDLE, ba.TAIL, ba.TAIL])
    # Person 1: history H+M, list T+T (disjoint: JS 1). Person 2: same mix (JS 0). Person 3 has
    # no history: left out. Mean 0.5.
    histories = [[0, 1], [0, 1], []]
    lists = [[2, 3], [1, 0], [0]]
    assert ba.popularity_miscalibration(histories, lists, buckets) == pytest.approx(0.5)
    assert ba.popularity_miscalibration(histories, lists, buckets, distance="hellinger") == pytest.approx(0.5)


def test_ndcg_per_person_and_segment_gaps():
    # List [3, 1, 2], relevant {1, 5}: DCG = 1/log₂3 = 0.63093; ideal 1 + 0.63093 → 0.38685.
    values = ba.ndcg_per_person([[3, 1, 2], [7], [4]], [{1, 5}, set(), {4}], k=3)
    assert values[0] == pytest.approx(0.630930 / 1.630930, abs=1e-6)
    assert math.isnan(values[1]) and values[2] == pytest.approx(1.0)
    # Segment a: (1 + 0.5)/2, segment b only NaN (left out), c 0.4, None is no segment.
    gaps = ba.mean_by_segment(np.array([1.0, 0.5, np.nan, 0.2, 0.4]), ["a", "a", "b", None, "c"])
    assert gaps["by_segment"] == {"a": pytest.approx(0.75), "c": pytest.approx(0.4)}
    assert gaps["gap"] == pytest.approx(0.35) and gaps["best"] == "a" and gaps["worst"] == "c"


def test_coverage_by_segment():
    # Segment x shows items 0, 1, 2 of 4; y shows item 3 → 0.75 and 0.25, gap 0.5.
    gaps = ba.coverage_by_segment([[0, 1], [1, 2], [3]], ["x", "x", "y"], 4)
    assert gaps["by_segment"] == {"x": 0.75, "y": 0.25}
    assert gaps["gap"] == pytest.approx(0.5)
    assert ba.coverage_by_segment([[0]], [None], 4) == {"by_segment": {}, "gap": 0.0, "best": None, "worst": None}


def test_metrics_at_cuts_the_lists_at_k():
    popularity = np.array([3, 1, 0, 0])
    features = np.eye(4)
    result = ba.metrics_at([[0, 1, 2], [0, 3, 2]], k=2, n_items=4, popularity=popularity, n_people=3,
                           features=features, histories=[[0], [1]])
    # Top 2: [0, 1] and [0, 3] → items 0, 1, 3 shown (3/4); counts [2, 1, 0, 1] sorted [0, 1, 1, 2]:
    # (−3·0 − 1·1 + 1·1 + 3·2) / (4·4) = 6/16.
    assert result["coverage@2"] == pytest.approx(0.75)
    assert result["gini@2"] == pytest.approx(6 / 16)
    # −log₂(3/3) = 0, −log₂(1/3) = 1.585, item 3 counts as 1: 1.585 → means 0.79248 each.
    assert result["novelty@2"] == pytest.approx(math.log2(3) / 2)
    assert result["ild@2"] == pytest.approx(1.0)
    # Buckets of [3, 1, 0, 0] (total 4; before 0, .75, 1, 1): H, M, T, T. Person 1: history H,
    # list H+M → JS([1,0,0], [.5,.5,0]) = 0.31128; person 2: history M, list H+T → m = (.25, .5, .25):
    # JS = ½·1 + ½·(½log₂2 + ½log₂2) = 1.
    assert result["miscalibration@2"] == pytest.approx((0.311278 + 1.0) / 2, abs=1e-6)
