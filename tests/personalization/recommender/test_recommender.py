"""The hybrid recommender on a small synthetic shop: exact explanations, cold start, exclusions, determinism."""

from __future__ import annotations

import pickle  # noqa: S403 - round-trips our own model

import numpy as np
import pytest
from scipy import sparse

from personalization.explanations import PersonContext, explanation_build
from personalization.recommender import (
    GLOBAL_FALLBACK,
    SEGMENT_FALLBACK,
    HybridRecommender,
    RecommenderConfig,
    tune,
)
from personalization.recommender.itemitem import gram_factors, sparse_weights
from personalization.recommender.tuning import CAPACITY_TOLERANCE
from personalization.services.recommender_adapter import HybridAdapter

N_USERS, N_ITEMS, N_CLUSTERS = 150, 60, 4
TOLERANCE = 1e-6


def synthetic_shop(seed: int = 3):
    """People who mostly buy from one of four item clusters; texts and categories follow the clusters."""
    rng = np.random.default_rng(seed)
    cluster_of_item = np.arange(N_ITEMS) % N_CLUSTERS
    taste = rng.integers(0, N_CLUSTERS, size=N_USERS)
    rows, cols = [], []
    for u in range(N_USERS):
        own = np.flatnonzero(cluster_of_item == taste[u])
        other = np.flatnonzero(cluster_of_item != taste[u])
        picks = np.concatenate([rng.choice(own, size=int(rng.integers(3, 9)), replace=False),
                                rng.choice(other, size=int(rng.integers(0, 3)), replace=False)])
        rows += [u] * len(picks)
        cols += picks.tolist()
    weights = rng.choice([1.0, 2.0, 4.0], size=len(rows))
    interactions = sparse.csr_matrix((weights, (rows, cols)), shape=(N_USERS, N_ITEMS))
    words = ["garden", "kitchen", "books", "music"]
    texts = [f"Thing {i} for the {words[c]} {words[(c + 1) % 4] if i % 5 == 0 else ''}"
             for i, c in enumerate(cluster_of_item)]
    categories = [words[c].title() for c in cluster_of_item]
    segments = taste.copy()
    segments[::10] = -1   # some people have no segment
    return interactions, texts, categories, segments


@pytest.fixture(scope="module")
def shop():
    return synthetic_shop()


@pytest.fixture(scope="module")
def model(shop):
    interactions, texts, categories, segments = shop
    config = RecommenderConfig(content_weight=0.01, popularity_weight=0.01, exposure_capacity=2.0, seed=5)
    return HybridRecommender(config).fit(interactions, texts, categories, segments)


def test_parts_add_up_to_the_score_and_contributions_to_their_parts(model):
    lists = model.recommend(np.arange(N_USERS), k=8)
    checked = 0
    for recs in lists:
        assert [rec.rank for rec in recs] == list(range(1, len(recs) + 1))
        for rec in recs:
            # The re-ranking's "exposure" part is there for personally scored items only.
            assert set(rec.parts) == {"collaborative", "content", "popularity"} | ({"exposure"} if rec.fallback is None
                                                                                   else set())
            assert abs(rec.score - sum(rec.parts.values())) <= TOLERANCE
            assert abs(rec.parts["collaborative"] - sum(c for _, c in rec.contributing_items)) <= TOLERANCE
            assert abs(rec.parts["content"] - sum(c for _, c in rec.content_items)) <= TOLERANCE
            assert abs(rec.parts["content"] - sum(m.contribution for m in rec.matched_attributes)) <= TOLERANCE
            checked += 1
    assert checked == N_USERS * 8


def test_contributing_items_are_the_persons_own_items(model):
    for user, recs in enumerate(model.recommend(np.arange(20), k=5)):
        own = set(model.interactions[user].indices.tolist())
        for rec in recs:
            assert rec.contributing_items, "a warm person's recommendation names their items"
            assert {item for item, _ in rec.contributing_items} <= own
            assert {item for item, _ in rec.content_items} <= own
            contributions = [c for _, c in rec.contributing_items]
            assert contributions == sorted(contributions, reverse=True)


def test_removing_the_top_contributing_item_lowers_the_items_score(shop, model):
    interactions = shop[0]
    for user in range(0, N_USERS, 7):
        rec = model.recommend([user], k=1)[0][0]
        top_item, contribution = rec.contributing_items[0]
        assert contribution > 0
        history = interactions[[user]].tolil()
        history[0, top_item] = 0
        after = model.explain(None, rec.item, history=history.tocsr(), segment=model.user_segments[user])
        assert after.score < rec.score
        # The score is linear in the history: the drop is exactly the item's own contribution.
        expected = contribution + dict(rec.content_items).get(top_item, 0.0)
        assert rec.score - after.score == pytest.approx(expected, abs=TOLERANCE)


def test_cold_start_gets_segment_popularity_with_the_fallback_named(shop, model):
    interactions, _, _, segments = shop
    segment = int(segments[1])
    recs = model.recommend([None], k=5, segments=[segment])[0]
    assert all(rec.fallback == SEGMENT_FALLBACK and rec.segment == segment for rec in recs)
    members = np.flatnonzero(segments == segment)
    counts = np.asarray((interactions[members] != 0).sum(axis=0)).ravel()
    assert [rec.item for rec in recs] == sorted(range(N_ITEMS), key=lambda i: (-counts[i], i))[:5]
    assert all(rec.score == rec.parts["popularity"] and not rec.contributing_items for rec in recs)
    [[scored]] = HybridAdapter(model, [f"sku-{i}" for i in range(N_ITEMS)]).recommend(
        rows=[None], segments=[segment], exclude=[set()], k=1)
    person = PersonContext(item_actions={}, item_sources={}, sources={"shop"},
                           segment={"id": segment, "name": "Garden lovers"})
    explanation = explanation_build(scored, person=person, titles={}, model_version=model.model_version)
    assert "“Garden lovers” segment" in explanation["text"]
    assert explanation["segment"]["name"] == "Garden lovers" and explanation["purposes"] == [
        "personalization", "analytics"]


def test_cold_start_without_a_usable_segment_gets_everyones_popularity(shop, model):
    interactions = shop[0]
    counts = np.asarray((interactions != 0).sum(axis=0)).ravel()
    expected = sorted(range(N_ITEMS), key=lambda i: (-counts[i], i))[:5]
    for segments in (None, [-1], ["no-such-segment"]):
        recs = model.recommend([-1], k=5, segments=segments)[0]
        assert [rec.item for rec in recs] == expected
        assert all(rec.fallback == GLOBAL_FALLBACK and rec.segment is None for rec in recs)


def test_small_segments_fall_back_to_everyone(shop):
    interactions, texts, categories, segments = shop
    config = RecommenderConfig(min_segment_users=N_USERS)   # no segment is big enough
    model = HybridRecommender(config).fit(interactions, texts, categories, segments)
    recs = model.recommend([None], k=3, segments=[int(segments[1])])[0]
    assert all(rec.fallback == GLOBAL_FALLBACK for rec in recs)


def test_seen_and_excluded_items_are_never_recommended(shop, model):
    interactions = shop[0]
    users = np.arange(N_USERS)
    for user, recs in zip(users, model.recommend(users, k=10)):
        assert not {rec.item for rec in recs} & set(interactions[user].indices.tolist())
    first = model.recommend([0], k=3)[0]
    banned = [rec.item for rec in first[:2]]
    again = model.recommend([0], k=3, exclude=[banned])[0]
    assert not {rec.item for rec in again} & set(banned)
    keep_seen = model.recommend([0], k=N_ITEMS, exclude_seen=False)[0]
    assert set(interactions[0].indices.tolist()) <= {rec.item for rec in keep_seen}


def test_a_list_is_filled_from_popularity_when_the_history_scores_too_few_items(shop):
    interactions, texts, categories, segments = shop
    config = RecommenderConfig(cf_weight=0.0, content_weight=1.0, content_neighbours=1)
    model = HybridRecommender(config).fit(interactions, texts, categories, segments)
    recs = model.recommend([0], k=N_ITEMS)[0]
    personal = [rec for rec in recs if rec.fallback is None]
    filled = [rec for rec in recs if rec.fallback is not None]
    assert personal and filled
    assert recs.index(filled[0]) == len(personal)   # personal items first
    assert len({rec.item for rec in recs}) == len(recs)


def test_the_same_seed_gives_the_same_output(shop):
    interactions, texts, categories, segments = shop
    config = RecommenderConfig(seed=11, cf_rank=8)   # rank < items: the randomized SVD is used
    first = HybridRecommender(config).fit(interactions, texts, categories, segments)
    second = HybridRecommender(config).fit(interactions, texts, categories, segments)
    assert first.model_version == second.model_version
    assert first.recommend(np.arange(N_USERS), k=5) == second.recommend(np.arange(N_USERS), k=5)
    assert first.model_version != HybridRecommender(config.replace(seed=12)).model_version


def test_the_model_pickles(model):
    again = pickle.loads(pickle.dumps(model))  # noqa: S301 - our own object, as the pipeline stores it
    assert again.recommend([0, 1, None], k=4) == model.recommend([0, 1, None], k=4)


def test_unrestricted_model_is_exactly_ease(shop):
    """With full rank, every neighbour kept and no extras, the sparse model is EASE's closed form."""
    interactions = shop[0]
    X = sparse.csr_matrix(interactions, dtype=np.float64)
    gram = gram_factors(X, rank=N_ITEMS, user_exponent=0.0, seed=0)
    B = sparse_weights(gram, l2=2.0, diag_reg=0.0, popularity_exponent=0.0, neighbours=N_ITEMS).toarray()
    G = (X.T @ X).toarray()
    lam = 2.0 * np.diag(G)[np.diag(G) > 0].mean()
    P = np.linalg.inv(G + lam * np.eye(N_ITEMS))
    expected = P / -np.diag(P)
    np.fill_diagonal(expected, 0.0)
    assert np.abs(B - expected).max() < 1e-5 * np.abs(expected).max()


def test_neighbours_bound_the_model_size(shop):
    interactions = shop[0]
    gram = gram_factors(sparse.csr_matrix(interactions), rank=10, user_exponent=0.3, seed=0)
    B = sparse_weights(gram, l2=10.0, diag_reg=1.0, popularity_exponent=0.2, neighbours=7)
    assert (np.diff(B.tocsc().indptr) <= 7).all()
    assert B.diagonal().max() == 0.0


def test_the_stored_explanation_stays_exact_when_shortened(shop, model):
    """The one explanation builder lists a few own items; with the rest summed, they add up to the personal parts."""
    interactions, texts, _, _ = shop
    ids = [f"sku-{i}" for i in range(N_ITEMS)]
    rec = model.recommend([3], k=1, segments=[-1])[0][0]
    [[scored]] = HybridAdapter(model, ids).recommend(rows=[3], segments=[None], exclude=[set()], k=1)
    assert scored.item_id == ids[rec.item] and scored.score == pytest.approx(rec.score)
    own = {ids[j]: {"purchase"} for j in interactions[3].indices}
    person = PersonContext(item_actions=own, item_sources={i: {"shop"} for i in own}, sources={"shop"})
    stored = explanation_build(scored, person=person, titles=dict(zip(ids, texts, strict=True)),
                               model_version=model.model_version)
    listed = sum(item["contribution"] for item in stored["because_of"]) + stored["other_items_contribution"]
    personal = rec.parts["collaborative"] + rec.parts["content"]
    assert listed == pytest.approx(personal, abs=TOLERANCE)
    assert 1 <= len(stored["because_of"]) < len(own)
    assert stored["because_of"][0]["item_id"] in own and stored["data_sources"] == ["shop"]
    assert stored["text"].startswith("Recommended because you bought “") and stored["text"].endswith(".")


def test_changed_histories_are_scored_without_refitting(shop, model):
    interactions = shop[0]
    same = model.recommend([None], k=5, history=interactions[[4]])[0]
    assert [r.item for r in same] == [r.item for r in model.recommend([4], k=5, segments=[None])[0]]


def test_bad_input_is_refused(shop):
    interactions, texts, categories, segments = shop
    with pytest.raises(ValueError, match="non-negative"):
        HybridRecommender().fit(-interactions, texts, categories)
    with pytest.raises(ValueError, match="one entry per"):
        HybridRecommender().fit(interactions, texts[:3], categories)
    with pytest.raises(ValueError, match="Invalid recommender configuration"):
        RecommenderConfig(cf_l2=0.0)
    with pytest.raises(IndexError):
        HybridRecommender().fit(interactions, texts, categories).recommend([N_USERS], k=3)


def test_tune_picks_a_configuration_on_validation_data_only(shop):
    interactions, texts, categories, segments = shop
    space = {"cf_l2": (1.0, 18.0), "content_weight": (0.0, 0.01)}
    result = tune(interactions, texts, categories, segments, seed=4, k=5, search_space=space)
    assert result.config.seed == 4
    assert result.search_ndcg >= result.start_ndcg
    assert result.validation_ndcg >= (1 - CAPACITY_TOLERANCE) * result.search_ndcg
    assert 1 <= len(result.trials) <= 1 + 2 * 2 * 2
    again = tune(interactions, texts, categories, segments, seed=4, k=5, search_space=space)
    assert again.config == result.config
    assert len(tune(interactions, texts, categories, segments, seed=4, k=5, search_space=space,
                    budget=2).trials) == 2


def test_a_batch_explains_each_person_exactly_as_alone(model):
    """Explanations are built from model weights read for the whole batch at once: the same
    terms, to the bit, as a person scored alone and as the weights' own rows say."""
    together = model.recommend(np.arange(N_USERS), k=8)
    weights = model.config.part_weights
    for user in range(0, N_USERS, 7):
        assert model.recommend([user], k=8)[0] == together[user]
        history = model.interactions[user]  # as fitted (weights transformed)
        own, x = history.indices, history.data
        for rec in together[user]:
            if rec.fallback is not None:
                continue
            cf = model.weights[own][:, [rec.item]].toarray().ravel() * (weights["collaborative"] * x)
            content = model.content.similarity[own][:, [rec.item]].toarray().ravel() * (weights["content"] * x)
            expected = [sorted(((int(i), float(v)) for i, v in zip(own, terms) if v != 0), key=lambda p: (-p[1], p[0]))
                        for terms in (cf, content)]
            assert [rec.contributing_items, rec.content_items] == expected
