"""Turning a `Recommendation` into what is stored and shown: a JSON-ready dict and one sentence.

The dict keeps the explanation exact when it is shortened: the `top` largest per-item and
per-attribute contributions are listed and everything else is summed into an `other_*`
remainder, so the listed numbers still add up to the parts and the parts to the score.
"""

from __future__ import annotations

from collections.abc import Sequence

from personalization.recommender.hybrid import Recommendation
from personalization.recommender.popularity import SEGMENT_FALLBACK

MAX_ITEMS_IN_SENTENCE = 2
MAX_ATTRIBUTES_IN_SENTENCE = 2


def explanation_dict(rec: Recommendation, *, item_ids: Sequence[str], item_titles: Sequence[str] | None = None,
                     segment_name: str | None = None, top: int = 5) -> dict:
    """The structured explanation of `rec`, with item indices mapped to `item_ids`."""

    def item(index: int, contribution: float) -> dict:
        entry = {"item_id": item_ids[index], "contribution": contribution, "share": _share(contribution, rec.score)}
        if item_titles is not None:
            entry["title"] = item_titles[index]
        return entry

    cf, content = rec.contributing_items, rec.content_items
    attributes = rec.matched_attributes
    return {
        "score": rec.score,
        "rank": rec.rank,
        "parts": dict(rec.parts),
        "contributing_items": [item(i, c) for i, c in cf[:top]],
        "other_items_contribution": sum(c for _, c in cf[top:]),
        "content_items": [item(i, c) for i, c in content[:top]],
        "other_content_items_contribution": sum(c for _, c in content[top:]),
        "matched_attributes": [{"kind": m.kind, "value": m.value, "contribution": m.contribution}
                               for m in attributes[:top]],
        "other_attributes_contribution": sum(m.contribution for m in attributes[top:]),
        "segment": None if rec.segment is None else {"label": rec.segment, "name": segment_name},
        "fallback": rec.fallback,
        "text": explanation_text(rec, item_titles=item_titles, segment_name=segment_name),
    }


def explanation_text(rec: Recommendation, *, item_titles: Sequence[str] | None = None,
                     segment_name: str | None = None) -> str:
    """One plain sentence: why this item, in terms of the person's own items and attributes."""
    if rec.fallback == SEGMENT_FALLBACK:
        name = f" “{segment_name}”" if segment_name else ""
        return (f"Popular with customers in your segment{name}; "
                "we will tailor this once we know your taste better.")
    if rec.fallback is not None:
        return "Popular with customers right now; we will tailor this once we know your taste better."
    own = [(i, c) for i, c in _merge(rec.contributing_items, rec.content_items) if c > 0]
    named = own[:MAX_ITEMS_IN_SENTENCE]
    words = _unique([m.value for m in rec.matched_attributes if m.contribution > 0])[:MAX_ATTRIBUTES_IN_SENTENCE]
    clauses = []
    if named:
        titles = [f"“{item_titles[i]}”" if item_titles is not None else f"item {i}" for i, _ in named]
        share = _share(sum(c for _, c in named), rec.score)
        percent = f" ({share:.0%} of its score)" if share is not None and 0 < share <= 1 else ""
        clauses.append(f"you showed interest in {_and(titles)}{percent}")
    if words:
        clauses.append(f"it shares {_and(words)} with items you chose")
    if not clauses:
        if rec.parts.get("popularity", 0.0) > 0:
            return "Recommended because it is popular with customers like you."
        return "Recommended from the tastes of customers with histories like yours."
    return "Recommended because " + " and ".join(clauses) + "."


def _merge(*lists: list[tuple[int, float]]) -> list[tuple[int, float]]:
    total: dict[int, float] = {}
    for pairs in lists:
        for i, c in pairs:
            total[i] = total.get(i, 0.0) + c
    return sorted(total.items(), key=lambda pair: (-pair[1], pair[0]))


def _share(part: float, score: float) -> float | None:
    return part / score if score > 0 else None


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _unique(values: list[str]) -> list[str]:
    """First spelling of each value, case-insensitively (category "Drama" and the word "drama")."""
    seen: dict[str, str] = {}
    for value in values:
        seen.setdefault(value.casefold(), value)
    return list(seen.values())
