"""The demo data generator: reproducible, structurally sound, messy where it should be, learnable.

Everything here reads the dataset the way the platform would: people are found only through
the identifiers in first-party records (normalised, junk dropped, linked transitively), and
behaviour only through events. The ground truth is used to score, never to join.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

from cdp.demo.generator import generate_demo

CUSTOMERS = 2000
SEED = 7
JUNK_VALUES = {"", "test@test.com", "null", "-1", "0000000000"}
CALLING_CODES = {"GB": "44", "US": "1", "DE": "49", "FR": "33"}
PURPOSES = {"analytics", "personalization", "marketing", "enrichment", "sale_sharing"}


@pytest.fixture(scope="module")
def dataset():
    return generate_demo(customers=CUSTOMERS, seed=SEED)


@pytest.fixture(scope="module")
def resolver(dataset):
    return Resolver(dataset)


# --- A minimal identity resolver, as the platform would do it ----------------------------


def normalize(kind: str, value: str, country: str | None) -> str | None:
    """Normalised identifier value, or None for junk and for national phones without a country."""
    value = value.strip()
    if kind == "email":
        value = value.lower()
    if value.lower() in JUNK_VALUES:
        return None
    if kind == "phone":
        digits = re.sub(r"\D", "", value)
        if not set(digits) - {"0"}:
            return None
        if not value.startswith("+"):
            if country is None:
                return None
            code = CALLING_CODES[country]
            digits = code + (digits if code == "1" else digits.removeprefix("0"))
        value = f"+{digits}"
    return value


def identifier_keys(identifiers: dict, country: str | None) -> list[tuple[str, str]]:
    keys = []
    for kind, raw in identifiers.items():
        value = normalize(kind, raw, country)
        if value is not None:
            keys.append((kind, value))
    return keys


class Resolver:
    """Union-find over first-party identifiers; each component is one person."""

    def __init__(self, dataset):
        self.parent: dict[tuple[str, str], tuple[str, str]] = {}
        first_party = [s["key"] for s in dataset.sources if s["kind"] == "first_party"]
        for source in first_party:
            for record in dataset.records[source]:
                keys = identifier_keys(record["identifiers"], record["attributes"].get("country"))
                for key in keys:
                    self.parent.setdefault(key, key)
                for a, b in zip(keys, keys[1:]):
                    self.parent[self.find(a)] = self.find(b)
        self.person_of_root = {}
        for person, facts in dataset.truth.items():
            root = self.find(("email", facts["canonical_email"]))
            assert root not in self.person_of_root, f"{person} merged with {self.person_of_root.get(root)}"
            self.person_of_root[root] = person

    def find(self, key):
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def people(self, identifiers: dict, country: str | None = None) -> set[str | None]:
        roots = {self.find(k) for k in identifier_keys(identifiers, country) if k in self.parent}
        return {self.person_of_root.get(root) for root in roots}

    def person(self, identifiers: dict) -> str:
        people = self.people(identifiers)
        assert len(people) == 1 and None not in people, f"{identifiers} resolves to {people}"
        return people.pop()


def purchases_by_person(dataset, resolver) -> dict[str, list[tuple[datetime, str, float]]]:
    purchases = defaultdict(list)
    for event in dataset.events:
        if event["type"] == "purchase":
            when = datetime.fromisoformat(event["occurred_at"])
            amount = float(event["price"]) * event["quantity"]
            purchases[resolver.person(event["profile"])].append((when, event["item_id"], amount))
    for history in purchases.values():
        history.sort()
    return purchases


# --- 1. Reproducibility --------------------------------------------------------------------


def test_same_seed_gives_identical_data_and_another_seed_does_not():
    first, again, other = generate_demo(300, seed=1), generate_demo(300, seed=1), generate_demo(300, seed=2)
    assert first == again
    assert first.to_json() == again.to_json()
    assert json.loads(first.to_json())["events"] == first.events  # plain JSON data, nothing lost
    assert first.events != other.events
    assert first.truth != other.truth
    assert generate_demo(301, seed=1).truth != first.truth


def test_rejects_an_empty_shop():
    with pytest.raises(ValueError):
        generate_demo(0)


# --- 2. Structure --------------------------------------------------------------------------


def test_sources_and_catalogue_have_the_promised_shape(dataset):
    kinds = {s["key"]: (s["kind"], s["trust"]) for s in dataset.sources}
    assert kinds == {"shop": ("first_party", 80), "web": ("first_party", 50), "demo-crm": ("first_party", 90),
                     "enrichment": ("third_party", 20)}
    assert set(dataset.records) == set(kinds)
    ids = [item["id"] for item in dataset.items]
    assert len(set(ids)) == len(ids) and 250 <= len(ids) <= 350
    assert all(re.fullmatch(r"SKU-\d{4}", i) for i in ids)
    assert 8 <= len({item["category"] for item in dataset.items}) <= 10
    for item in dataset.items:
        assert item["title"] and item["description"]
        assert {"brand", "price", "color"} <= set(item["attributes"])
        assert item["attributes"]["price"] > 0


def test_every_person_is_one_component_of_their_own_identifiers(dataset, resolver):
    for person, facts in dataset.truth.items():
        expected = [("crm_id", facts["crm_id"]), ("user_id", facts["user_id"]), ("phone", facts["phone_e164"])]
        expected += [("anonymous_id", a) for a in facts["anonymous_ids"]]
        for key in expected:
            if key[1] is not None and key in resolver.parent:
                assert resolver.person_of_root.get(resolver.find(key)) == person, key
        assert facts["crm_id"] is None or ("crm_id", facts["crm_id"]) in resolver.parent
        assert all(("anonymous_id", a) in resolver.parent for a in facts["anonymous_ids"])


def test_every_event_and_consent_names_a_known_person(dataset, resolver):
    item_ids = {item["id"] for item in dataset.items}
    reference = datetime.fromisoformat(dataset.reference_time)
    for event in dataset.events:
        resolver.person(event["profile"])
        assert event["item_id"] in item_ids
        when = datetime.fromisoformat(event["occurred_at"])
        assert when.utcoffset() == timedelta(0)
        assert reference - timedelta(days=366) <= when < reference
        assert event["source"] in ("shop", "web")
    for consent in dataset.consents:
        resolver.person(consent["profile"])
        assert consent["purpose"] in PURPOSES and isinstance(consent["granted"], bool)
    message_ids = [e["message_id"] for e in dataset.events]
    assert len(set(message_ids)) == len(message_ids)


def test_event_payloads_carry_the_fields_of_their_type(dataset):
    counts = Counter(e["type"] for e in dataset.events)
    assert set(counts) == {"view", "add_to_cart", "purchase", "rating"}
    assert counts["view"] >= 3 * counts["purchase"]
    assert 2 <= counts["purchase"] / CUSTOMERS <= 8
    for event in dataset.events:
        if event["type"] == "purchase":
            assert event["quantity"] >= 1 and re.fullmatch(r"\d+\.\d\d", event["price"])
        if event["type"] == "rating":
            assert event["rating"] in (1, 2, 3, 4, 5)


def test_the_identity_mess_is_there(dataset, resolver):
    first_party = [r for s in ("shop", "web", "demo-crm") for r in dataset.records[s]]
    emails = [r["identifiers"]["email"] for r in first_party if "email" in r["identifiers"]]
    variants = defaultdict(set)
    for email in emails:
        variants[email.strip().lower()].add(email)
    assert sum(len(v) > 1 for v in variants.values()) >= 20  # case and whitespace variants of one address

    phone_spellings = defaultdict(set)
    for record in first_party + [{"identifiers": e["profile"], "attributes": {}} for e in dataset.events]:
        raw = record["identifiers"].get("phone")
        if raw is not None:
            normalized = normalize("phone", raw, record["attributes"].get("country"))
            if normalized:
                phone_spellings[normalized].add(raw)
    assert sum(len(v) >= 3 for v in phone_spellings.values()) >= 10
    all_spellings = {s for v in phone_spellings.values() for s in v}
    assert any(re.fullmatch(r"\(\d{3}\) \d{3}-\d{4}", s) for s in all_spellings)  # US national
    assert any(re.fullmatch(r"\+1-\d{3}-\d{3}-\d{4}", s) for s in all_spellings)
    assert any(s.startswith("+44 ") for s in all_spellings) and any(s.startswith("020 ") for s in all_spellings)

    raw_values = {v.strip().lower() for r in first_party for v in r["identifiers"].values()}
    assert {"test@test.com", "null", "-1", "0000000000"} <= raw_values

    crm_with_id = [r for r in dataset.records["demo-crm"] if "crm_id" in r["identifiers"]]
    assert crm_with_id and all("crm_id" not in r["identifiers"] for r in dataset.records["shop"])
    assert all("country" in r["attributes"] for r in first_party)


def test_anonymous_visitors_are_identified_later(dataset):
    anonymous_first, identified_at = {}, {}
    for record in dataset.records["web"]:
        ids = record["identifiers"]
        if set(ids) == {"anonymous_id"}:
            anonymous_first[ids["anonymous_id"]] = record["observed_at"]
        elif "email" in ids:
            identified_at[ids["anonymous_id"]] = record["observed_at"]
    stitched = [a for a in anonymous_first if a in identified_at and anonymous_first[a] < identified_at[a]]
    assert len(stitched) >= CUSTOMERS // 4
    anonymous_only_events = [e for e in dataset.events if set(e["profile"]) == {"anonymous_id"}]
    assert anonymous_only_events


def test_third_party_enrichment_matches_people_by_email(dataset, resolver):
    enrichment = dataset.records["enrichment"]
    assert enrichment
    matched = [r for r in enrichment if resolver.people(r["identifiers"]) - {None}]
    assert len(matched) >= CUSTOMERS // 50
    assert len(matched) < len(enrichment)  # some are strangers or junk
    for record in matched:
        assert {"income_band", "interests", "household_size"} <= set(record["attributes"])


def test_consent_choices_are_mixed_and_some_change(dataset, resolver):
    latest, history = {}, defaultdict(list)
    for consent in dataset.consents:  # already in time order
        key = (resolver.person(consent["profile"]), consent["purpose"])
        history[key].append(consent["granted"])
        latest[key] = consent["granted"]
    first_answers = defaultdict(list)
    for (_, purpose), answers in history.items():
        first_answers[purpose].append(answers[0])
    rates = {purpose: np.mean(answers) for purpose, answers in first_answers.items()}
    assert rates["analytics"] > rates["personalization"] > rates["marketing"] > rates["enrichment"]
    assert rates["enrichment"] > rates["sale_sharing"] > 0
    assert 0.7 <= rates["analytics"] <= 0.9 and rates["sale_sharing"] <= 0.2
    withdrawn = [k for k, answers in history.items() if answers[0] and not answers[-1]]
    assert len(withdrawn) >= 10
    unanswered = len(dataset.truth) * len(PURPOSES) - len(history)
    assert unanswered > 0


# --- 3. Latent groups are learnable from RFM + category share -------------------------------


def customer_features(dataset, purchases) -> tuple[list[str], np.ndarray]:
    reference = datetime.fromisoformat(dataset.reference_time)
    categories = sorted({item["category"] for item in dataset.items})
    category_of = {item["id"]: categories.index(item["category"]) for item in dataset.items}
    people, rows = sorted(purchases), []
    for person in people:
        history = purchases[person]
        recency = (reference - history[-1][0]).total_seconds() / 86_400
        monetary = sum(amount for _, _, amount in history)
        shares = np.bincount([category_of[item] for _, item, _ in history], minlength=len(categories))
        rows.append([recency, np.log1p(len(history)), np.log1p(monetary), *(shares / len(history))])
    return people, np.array(rows)


def test_latent_groups_are_recovered_by_kmeans_on_rfm_and_category_share(dataset, resolver):
    purchases = purchases_by_person(dataset, resolver)
    assert len(purchases) == len(dataset.truth)  # every customer has bought
    people, features = customer_features(dataset, purchases)
    clusters = KMeans(n_clusters=len(dataset.group_names), n_init=10, random_state=0).fit_predict(
        StandardScaler().fit_transform(features))
    score = adjusted_rand_score([dataset.truth[p]["group"] for p in people], clusters)
    assert score >= 0.5, f"adjusted Rand index {score:.3f}"


# --- 4. Co-purchase structure beats popularity -----------------------------------------------


def hit_rates_at_10(dataset, resolver) -> tuple[float, float]:
    """Leave each repeat buyer's last purchase out; rank unseen items by item-item cosine
    over training purchases, and by global popularity."""
    purchases = purchases_by_person(dataset, resolver)
    index = {item["id"]: i for i, item in enumerate(dataset.items)}
    people = sorted(purchases)
    bought = np.zeros((len(people), len(index)))
    held_out = {}
    for row, person in enumerate(people):
        history = purchases[person]
        training = history[:-1] if len(history) >= 2 else history
        for _, item, _ in training:
            bought[row, index[item]] = 1.0
        if len(history) >= 2 and not bought[row, index[history[-1][1]]]:
            held_out[row] = index[history[-1][1]]
    norms = np.linalg.norm(bought, axis=0)
    norms[norms == 0] = 1.0
    cosine = (bought.T @ bought) / np.outer(norms, norms)
    np.fill_diagonal(cosine, 0.0)
    popularity = bought.sum(axis=0)
    hits = {"co-occurrence": 0, "popularity": 0}
    for row, target in held_out.items():
        seen = bought[row] > 0
        for name, scores in (("co-occurrence", bought[row] @ cosine), ("popularity", popularity.copy())):
            scores = np.where(seen, -np.inf, scores)
            hits[name] += target in np.argsort(-scores, kind="stable")[:10]
    assert len(held_out) >= CUSTOMERS // 3
    return hits["co-occurrence"] / len(held_out), hits["popularity"] / len(held_out)


def test_item_co_occurrence_beats_popularity(dataset, resolver):
    co_occurrence, popularity = hit_rates_at_10(dataset, resolver)
    assert popularity > 0
    assert co_occurrence >= 1.2 * popularity, f"hit@10 co-occurrence {co_occurrence:.3f} vs popularity {popularity:.3f}"
