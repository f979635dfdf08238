"""Why a customer got a recommendation: a structured explanation and one human sentence.

Pure functions over what the recommender returned and what the pipeline knows about the
person (their item interactions, the sources those came from, their segment). The
explanation names only the person's own items, so it is stored and served to them (and
to an integrator with `recommendations:read`), never logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from personalization.recommender.popularity import SEGMENT_FALLBACK  # the fallbacks the model names

# Strongest first: what the sentence says the person did with an item.
CART = "added to your cart"
VERBS = (("purchase", "bought"), ("rating", "rated"), ("add_to_cart", CART), ("view", "viewed"))
MAX_ITEMS_IN_SENTENCE = 2


@dataclass
class Scored:
    """One recommendation as the pipeline needs it, whatever the model's own types are.

    `parts` holds each model part's exact additive contribution to `score`; `because`
    the person's own items that raised it, as (item id, share of what they raised it by,
    exact contribution), the rest summed in `other_items`; `attributes` the content
    attributes that matched, as (kind, value, contribution).
    """

    item_id: str
    score: float
    parts: dict[str, float]
    because: list[tuple[str, float, float]] = field(default_factory=list)
    attributes: list[tuple[str, str, float]] = field(default_factory=list)
    other_items: float = 0.0
    fallback: str | None = None
    segment_used: bool = False              # the segment's popularity went into the score


@dataclass
class PersonContext:
    """What the pipeline knows about the person, for the explanation."""

    item_actions: dict[str, set[str]]        # item id → event types
    item_sources: dict[str, set[str]]        # item id → source keys
    sources: set[str]                        # every source of the person's events
    segment: dict | None = None              # {"id", "name"} when analytics allows it


def explanation_build(scored: Scored, *, person: PersonContext, titles: dict[str, str],
                      model_version: str, categories: dict[str, str] | None = None) -> dict:
    """The stored explanation: parts and their shares, own items, attributes, segment,
    fallback, data sources and purposes, and `text`, one sentence saying it plainly.
    `categories` (item id → catalogue category) lets the sentence name shared categories."""
    categories = categories or {}
    total = sum(abs(v) for v in scored.parts.values())
    shares = {part: round(abs(value) / total, 4) if total else 0.0 for part, value in scored.parts.items()}
    because = [{"item_id": item_id, "title": titles.get(item_id, item_id), "share": round(share, 4),
                "contribution": round(contribution, 6), "action": _action(person.item_actions.get(item_id, set())),
                "category": categories.get(item_id) or None}
               for item_id, share, contribution in scored.because]
    used_segment = scored.segment_used or scored.fallback == SEGMENT_FALLBACK
    segment = person.segment if used_segment else None
    sources: set[str] = set()
    for item in because:
        sources |= person.item_sources.get(item["item_id"], set())
    if segment is not None:
        # Segment membership comes from the features of all the person's events.
        sources |= person.sources
    purposes = ["personalization"] + (["analytics"] if segment is not None else [])
    explanation = {
        "parts": shares,
        "contributions": {part: round(value, 6) for part, value in scored.parts.items()},
        "because_of": because,
        "other_items_contribution": round(scored.other_items, 6),
        "matched_attributes": [{"name": name, "value": value, "contribution": round(contribution, 6)}
                               for name, value, contribution in scored.attributes],
        "category": categories.get(scored.item_id) or None,
        "segment": segment,
        "fallback": scored.fallback,
        "pinned": None,
        "data_sources": sorted(sources),
        "purposes": purposes,
        "model_version": model_version,
    }
    explanation["text"] = explanation_sentence(explanation, person_segment=person.segment)
    return explanation


def pinned_explanation(*, segment: dict | None, person: PersonContext, model_version: str) -> dict:
    """An item an operator pinned first (personalization.services.oversight): the team chose it,
    for the person's segment or for everyone. No model part made it, so none is listed; the
    row's score is the list's best model score, so the list stays in score order."""
    explanation = {
        "parts": {}, "contributions": {}, "because_of": [], "other_items_contribution": 0.0,
        "matched_attributes": [], "category": None, "segment": segment, "fallback": None,
        "pinned": {"segment": segment["name"] if segment else None},
        # Segment membership comes from the features of all the person's events.
        "data_sources": sorted(person.sources) if segment else [],
        "purposes": ["personalization"] + (["analytics"] if segment else []),
        "model_version": model_version,
    }
    explanation["text"] = explanation_sentence(explanation)
    return explanation


def explanation_sentence(explanation: dict, *, person_segment: dict | None = None) -> str:
    """Plain sentences from the structured explanation: the person's own items by title and
    the category they share with the item; never a description word or a percentage."""
    if explanation.get("pinned"):
        segment = explanation["pinned"]["segment"]
        who = f"customers in the “{segment}” segment" if segment else "all our customers"
        return f"Chosen by our team for {who}."
    because = [b for b in explanation["because_of"] if b["action"]][:MAX_ITEMS_IN_SENTENCE]
    fallback = explanation["fallback"]
    if fallback == SEGMENT_FALLBACK and explanation["segment"]:
        return f"Popular with customers in the “{explanation['segment']['name']}” segment, which you belong to."
    if fallback is not None and not because:
        return "Popular with customers right now. We will tailor this once we know your taste."
    category = explanation.get("category")
    if because:
        same = [b for b in because if category and b.get("category") == category]
        if same:
            verb = "is" if len(same) == 1 else "are"
            return f"Recommended because you {_and(_did(same))}, which {verb} in {category} like this item."
        actions = {b["action"] for b in because}
        chose = actions.pop() if len(actions) == 1 and "cart" not in next(iter(actions)) else "chose"
        them = "it" if len(because) == 1 else "them"
        return (f"Recommended because you {_and(_did(because))}, and customers who {chose} {them} "
                "often chose this too.")
    shared = [a for a in explanation["matched_attributes"] if a["name"] == "category" and a["value"] == category]
    if shared:
        return f"Recommended because it is in {category}, like items you chose before."
    return "Recommended from the tastes of customers like you."


def _did(because: list[dict]) -> list[str]:
    """"bought “A” and “B”", "bought “A” and viewed “B”", "added “A” to your cart"."""
    if len({b["action"] for b in because}) == 1 and because[0]["action"] in ("bought", "rated", "viewed"):
        return [f"{because[0]['action']} " + _and([f"“{b['title']}”" for b in because])]
    return [f"added “{b['title']}” to your cart" if b["action"] == CART else f"{b['action']} “{b['title']}”"
            for b in because]


def _action(types: set[str]) -> str | None:
    for event_type, verb in VERBS:
        if event_type in types:
            return verb
    return None


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
