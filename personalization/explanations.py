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
VERBS = (("purchase", "bought"), ("rating", "rated"), ("add_to_cart", "added to your cart"), ("view", "viewed"))
MAX_ITEMS_IN_SENTENCE = 2
MAX_ATTRIBUTES_IN_SENTENCE = 2


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
                      model_version: str) -> dict:
    """The stored explanation: parts and their shares, own items, attributes, segment,
    fallback, data sources and purposes, and `text`, one sentence saying it plainly."""
    total = sum(abs(v) for v in scored.parts.values())
    shares = {part: round(abs(value) / total, 4) if total else 0.0 for part, value in scored.parts.items()}
    because = [{"item_id": item_id, "title": titles.get(item_id, item_id), "share": round(share, 4),
                "contribution": round(contribution, 6), "action": _action(person.item_actions.get(item_id, set()))}
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
        "segment": segment,
        "fallback": scored.fallback,
        "data_sources": sorted(sources),
        "purposes": purposes,
        "model_version": model_version,
    }
    explanation["text"] = explanation_sentence(explanation, person_segment=person.segment)
    return explanation


def explanation_sentence(explanation: dict, *, person_segment: dict | None = None) -> str:
    because = [b for b in explanation["because_of"] if b["action"]][:MAX_ITEMS_IN_SENTENCE]
    values = _unique([a["value"] for a in explanation["matched_attributes"]])[:MAX_ATTRIBUTES_IN_SENTENCE]
    fallback = explanation["fallback"]
    if fallback == SEGMENT_FALLBACK and explanation["segment"]:
        return f"Popular with customers in the “{explanation['segment']['name']}” segment, which you belong to."
    if fallback is not None and not because:
        return "Popular with customers right now; we will tailor this once we know your taste."
    clauses = []
    if because:
        clauses.append("you " + _and([f"{b['action']} “{b['title']}”" for b in because]))
    if values:
        clauses.append("it matches your interest in " + _and(values))
    if not clauses:
        return "Recommended from the tastes of customers like you."
    return "Recommended because " + ", and ".join(clauses) + "."


def _action(types: set[str]) -> str | None:
    for event_type, verb in VERBS:
        if event_type in types:
            return verb
    return None


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _unique(values: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        seen.setdefault(str(value), None)
    return list(seen)
