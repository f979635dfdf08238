"""Explanations: structure, shares, sources, purposes and the sentence."""

from __future__ import annotations

from personalization.explanations import PersonContext, Scored, explanation_build

TITLES = {"a": "Blue Mug", "b": "Tea Set", "c": "Teapot", "p": "Garden Hose"}


def person(segment=None) -> PersonContext:
    return PersonContext(item_actions={"a": {"purchase", "view"}, "b": {"view"}},
                         item_sources={"a": {"shop"}, "b": {"web"}}, sources={"shop", "web", "crm"},
                         segment=segment)


def test_a_personal_recommendation_names_own_items_attributes_and_sources():
    scored = Scored("c", 0.9, {"collaborative": 0.6, "content": 0.3}, because=[("a", 0.7, 0.56), ("b", 0.3, 0.24)],
                    attributes=[("category", "kitchen", 0.3)], other_items=0.1)
    explanation = explanation_build(scored, person=person(), titles=TITLES, model_version="m1")
    assert explanation["parts"] == {"collaborative": 0.6667, "content": 0.3333}
    assert explanation["contributions"] == {"collaborative": 0.6, "content": 0.3}
    assert [b["item_id"] for b in explanation["because_of"]] == ["a", "b"]
    assert explanation["because_of"][0] == {"item_id": "a", "title": "Blue Mug", "share": 0.7, "contribution": 0.56,
                                            "action": "bought"}
    assert explanation["other_items_contribution"] == 0.1
    assert explanation["matched_attributes"] == [{"name": "category", "value": "kitchen", "contribution": 0.3}]
    assert explanation["data_sources"] == ["shop", "web"]  # only the sources of the items used
    assert explanation["purposes"] == ["personalization"] and explanation["segment"] is None
    assert explanation["text"] == ("Recommended because you bought “Blue Mug” and viewed “Tea Set”, "
                                   "and it matches your interest in kitchen.")


def test_a_segment_fallback_says_so_and_adds_analytics():
    segment = {"id": "s1", "name": "At risk"}
    scored = Scored("p", 0.2, {"segment_popularity": 0.2}, fallback="segment_popularity")
    explanation = explanation_build(scored, person=person(segment), titles=TITLES, model_version="m1")
    assert explanation["segment"] == segment and explanation["fallback"] == "segment_popularity"
    assert explanation["purposes"] == ["personalization", "analytics"]
    assert explanation["data_sources"] == ["crm", "shop", "web"]
    assert explanation["text"] == "Popular with customers in the “At risk” segment, which you belong to."


def test_a_popularity_fallback_uses_no_personal_data():
    scored = Scored("p", 0.2, {"popularity": 0.2}, fallback="popularity")
    explanation = explanation_build(scored, person=person({"id": "s", "name": "New"}), titles=TITLES,
                                    model_version="m1")
    assert explanation["data_sources"] == [] and explanation["purposes"] == ["personalization"]
    assert explanation["segment"] is None
    assert explanation["text"].startswith("Popular with customers right now")
