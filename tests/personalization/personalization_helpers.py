"""Helpers for the personalization tests (imported by name: pytest puts this directory on sys.path).

`shop_population` loads a small shop through the ordinary ingestion services; `FakeModel`
stands in for the recommender model where a test is about the pipeline, not the model.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import numpy as np

from personalization.explanations import SEGMENT_FALLBACK, Scored

CATEGORIES = ("kitchen", "garden", "books")
START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Population:
    source: object
    profile_ids: list
    analytics: set
    personalization: set
    item_ids: list


def shop_population(*, people: int = 60, seed: int = 7, analytics_every: int = 5,
                    personalization_every: int = 4, source_key: str = "shop") -> Population:
    """People with purchases and views of 30 items in 3 categories.

    Every `analytics_every`-th person does not allow analytics, every
    `personalization_every`-th does not allow personalization; the rest allow both.
    """
    from cdp.models import Source
    from cdp.services.events import events_ingest
    from cdp.services.items import items_upsert
    from cdp.services.resolution import profiles_ingest
    from cdp.services.sources import source_create
    from consent.services import consent_set

    rng = np.random.default_rng(seed)
    source = Source.objects.filter(key=source_key).first() or source_create(
        key=source_key, name="Shop", kind="first_party", trust=80)[0]
    items = [{"id": f"sku-{c}-{i}", "title": f"{c.title()} thing {i}", "category": c,
              "description": f"A {c} item", "attributes": {"colour": ["red", "blue", "green"][i % 3]}}
             for c in CATEGORIES for i in range(10)]
    items_upsert(items=items)
    results = profiles_ingest(source=source, records=[
        {"external_id": f"p{i}", "identifiers": {"user_id": f"u{i}"}} for i in range(people)])
    ids = [UUID(str(r.profile_id)) for r in results]
    events = []
    for i in range(people):
        taste = CATEGORIES[i % 3]
        orders = int(rng.integers(1, 8)) if i % 7 else 0   # some only browse
        for o in range(orders):
            at = START + timedelta(days=int(rng.integers(0, 300)))
            for _ in range(int(rng.integers(1, 3))):
                j = int(rng.integers(0, 10))
                events.append({"profile_id": str(ids[i]), "type": "purchase", "item_id": f"sku-{taste}-{j}",
                               "quantity": int(rng.integers(1, 3)), "price": f"{rng.integers(5, 200)}.00",
                               "occurred_at": at.isoformat(), "message_id": f"p{i}-o{o}-{j}"})
        for v in range(int(rng.integers(1, 12))):
            category = taste if rng.random() < 0.8 else CATEGORIES[int(rng.integers(0, 3))]
            j = int(rng.integers(0, 10))
            at = START + timedelta(days=int(rng.integers(0, 300)))
            events.append({"profile_id": str(ids[i]), "type": "view", "item_id": f"sku-{category}-{j}",
                           "occurred_at": at.isoformat(), "message_id": f"p{i}-v{v}"})
    for start in range(0, len(events), 2000):
        events_ingest(source=source, events=events[start:start + 2000])
    analytics, personalization = set(), set()
    for i, pid in enumerate(ids):
        if i % analytics_every:
            consent_set(profile_id=pid, purpose="analytics", granted=True)
            analytics.add(pid)
        if i % personalization_every:
            consent_set(profile_id=pid, purpose="personalization", granted=True)
            personalization.add(pid)
    return Population(source, ids, analytics, personalization, [item["id"] for item in items])


class FakeModel:
    """Item popularity among the person's favourite category, explained by their own items.

    Implements the adapter's side of the seam (`recommend` → lists of `Scored`), so a test
    exercises everything of the pipeline but the real model.
    """

    model_version = "fake-1"

    def __init__(self, data):
        self.item_ids = list(data.item_ids)
        counts = np.asarray(data.interactions.sum(axis=0)).ravel()
        self.popularity = counts / max(counts.max(), 1.0)
        self.rows = [set(np.flatnonzero(data.interactions[r].toarray().ravel())) for r in range(len(data.profile_ids))]
        self.categories = [a["category"] for a in data.item_attributes]
        self.segment_popular = {}
        for s in range(data.segment_count):
            members = np.flatnonzero(data.user_segments == s)
            self.segment_popular[s] = np.asarray(data.interactions[members].sum(axis=0)).ravel() if len(members) \
                else counts
        self.fits = 1

    def recommend(self, *, rows, segments, exclude, k):
        result = []
        for row, segment, consumed in zip(rows, segments, exclude):
            own = self.rows[row] if row is not None else set()
            if not own:
                base = self.segment_popular.get(segment) if segment is not None else None
                fallback = SEGMENT_FALLBACK if base is not None else "popularity"
                base = base if base is not None else self.popularity
                order = [j for j in np.argsort(-base, kind="stable") if self.item_ids[j] not in consumed][:k]
                part = "segment_popularity" if fallback == SEGMENT_FALLBACK else "popularity"
                result.append([Scored(self.item_ids[j], float(base[j]) + 1e-6, {part: float(base[j]) + 1e-6},
                                      fallback=fallback, segment_used=fallback == SEGMENT_FALLBACK)
                               for j in order])
                continue
            favourite = Counter(self.categories[j] for j in own).most_common(1)[0][0]
            because = sorted(own)[:2]
            scored = []
            for j in np.argsort(-self.popularity, kind="stable"):
                if self.item_ids[j] in consumed or len(scored) == k:
                    continue
                content = 0.5 if self.categories[j] == favourite else 0.0
                parts = {"collaborative": float(self.popularity[j]), "content": content}
                share = parts["collaborative"] / len(because)
                scored.append(Scored(self.item_ids[j], sum(parts.values()), parts,
                                     because=[(self.item_ids[b], 1 / len(because), share) for b in because],
                                     attributes=[("category", favourite, content)] if content else []))
            result.append(sorted(scored, key=lambda s: -s.score))
        return result


def fake_model_fit(data, *, seed):
    return FakeModel(data)
