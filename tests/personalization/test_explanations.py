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
                                            "action": "bought", "category": None}
    assert explanation["other_items_contribution"] == 0.1
    assert explanation["matched_attributes"] == [{"name": "category", "value": "kitchen", "contribution": 0.3}]
    assert explanation["data_sources"] == ["shop", "web"]  # only the sources of the items used
    assert explanation["purposes"] == ["personalization"] and explanation["segment"] is None
    # Without the catalogue's categories the sentence says what the collaborative part did.
    assert explanation["text"] == ("Recommended because you bought “Blue Mug” and viewed “Tea Set”, "
                                   "and customers who chose them often chose this too.")


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


# -- sentences a customer can follow (issue #16) ---------------------------------------------------

CATEGORIES = {"a": "kitchen", "b": "kitchen", "c": "kitchen", "m": "electronics", "x": "books", "p": "garden"}


def test_description_words_are_never_named_as_interests():
    # The demo said "it matches your interest in beauty and dry": "dry" is a description word.
    scored = Scored("c", 0.9, {"content": 0.9}, attributes=[("category", "beauty", 0.5), ("text", "dry", 0.4)])
    explanation = explanation_build(scored, person=person(), titles=TITLES, model_version="m1",
                                    categories={**CATEGORIES, "c": "beauty"})
    assert "dry" not in explanation["text"] and "interest" not in explanation["text"]
    # The structured part keeps every matched attribute: it still adds up to the content part.
    assert [a["value"] for a in explanation["matched_attributes"]] == ["beauty", "dry"]


def test_own_items_in_the_same_category_are_named_with_it():
    scored = Scored("c", 0.9, {"collaborative": 0.6, "content": 0.3}, because=[("a", 0.7, 0.56), ("b", 0.3, 0.24)],
                    attributes=[("category", "kitchen", 0.3)], other_items=0.1)
    text = explanation_build(scored, person=person(), titles=TITLES, model_version="m1", categories=CATEGORIES)["text"]
    assert text == ("Recommended because you bought “Blue Mug” and viewed “Tea Set”, "
                    "which are in kitchen like this item.")


def test_an_item_from_another_category_is_explained_by_what_other_customers_chose():
    # A gaming mouse raised by a biography: say what the model did (customers who chose it chose this).
    scored = Scored("m", 0.5, {"collaborative": 0.5}, because=[("x", 1.0, 0.5)])
    context = PersonContext(item_actions={"x": {"purchase"}}, item_sources={"x": {"shop"}}, sources={"shop"})
    text = explanation_build(scored, person=context, titles={"x": "A Life in Letters", "m": "Gaming Mouse"},
                             model_version="m1", categories=CATEGORIES)["text"]
    assert text == ("Recommended because you bought “A Life in Letters”, "
                    "and customers who bought it often chose this too.")


def test_no_percentages_in_any_sentence():
    scored = Scored("c", 0.9, {"collaborative": 0.6, "content": 0.3}, because=[("a", 0.7, 0.56)])
    assert "%" not in explanation_build(scored, person=person(), titles=TITLES, model_version="m1",
                                        categories=CATEGORIES)["text"]


def test_a_pinned_item_says_our_team_chose_it():
    from personalization.explanations import pinned_explanation

    explanation = pinned_explanation(segment={"id": "s1", "name": "Loyal"}, person=person(),
                                     model_version="m1")
    assert explanation["text"] == "Chosen by our team for customers in the “Loyal” segment."
    assert explanation["pinned"] == {"segment": "Loyal"} and explanation["because_of"] == []
    assert explanation["purposes"] == ["personalization", "analytics"]
    everyone = pinned_explanation(segment=None, person=person(), model_version="m1")
    assert everyone["text"] == "Chosen by our team for all our customers."
    assert everyone["purposes"] == ["personalization"] and everyone["data_sources"] == []


def test_one_verb_for_items_done_alike_and_the_cart_said_plainly():
    context = PersonContext(item_actions={"a": {"purchase"}, "b": {"purchase"}, "x": {"add_to_cart"}},
                            item_sources={}, sources=set())
    same = Scored("c", 0.9, {"collaborative": 0.9}, because=[("a", 0.5, 0.45), ("b", 0.5, 0.45)])
    text = explanation_build(same, person=context, titles=TITLES, model_version="m1", categories=CATEGORIES)["text"]
    assert text == "Recommended because you bought “Blue Mug” and “Tea Set”, which are in kitchen like this item."
    cart = Scored("m", 0.5, {"collaborative": 0.5}, because=[("x", 1.0, 0.5)])
    text = explanation_build(cart, person=context, titles={"x": "Atlas"}, model_version="m1",
                             categories=CATEGORIES)["text"]
    assert text == ("Recommended because you added “Atlas” to your cart, "
                    "and customers who chose it often chose this too.")
