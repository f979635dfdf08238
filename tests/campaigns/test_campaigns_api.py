"""Campaign endpoints and services: create, sticky consent-checked assignment, withdrawal,
outcomes, bandit weights, DP results, stop."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from campaign_helpers import client_with, people

from campaigns.models import Assignment, Campaign
from campaigns.services import results as results_service
from campaigns.services.allocation import campaign_weights_recompute
from campaigns.services.assignment import assignment_get
from campaigns.services.campaigns import campaign_create
from campaigns.services.results import campaign_analysis, campaign_results_release
from cdp.services.events import events_ingest
from consent import registry
from consent.services import consent_set
from personalization.models import DpRelease

pytestmark = pytest.mark.django_db

BODY = {"key": "spring", "name": "Spring offer", "variants": [{"key": "control"}, {"key": "discount"}],
        "allocation": "fixed", "metric": {"event": "purchase", "kind": "conversion"}}


def test_create_assign_sticky_and_consent_gated(source_factory):
    shop = source_factory("shop")
    ids = people(shop, 6, consenting=4)
    writer, reader = client_with("campaigns:write"), client_with("campaigns:read")
    response = writer.post("/api/v1/campaigns", BODY, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["variants"][0]["allocation"] == 0.5
    assert writer.post("/api/v1/campaigns", BODY, format="json").json()["code"] == "campaign_exists"
    assert reader.post("/api/v1/campaigns", BODY, format="json").status_code == 403

    first = reader.get(f"/api/v1/profiles/{ids[0]}/campaigns/spring").json()
    assert first["in_experiment"] is True and first["propensity"] == 0.5
    for _ in range(3):  # sticky
        assert reader.get(f"/api/v1/profiles/{ids[0]}/campaigns/spring").json()["variant"] == first["variant"]
    no_consent = reader.get(f"/api/v1/profiles/{ids[5]}/campaigns/spring").json()
    assert no_consent == {"campaign": "spring", "variant": "control", "in_experiment": False, "propensity": None,
                          "reason": "no_consent", "capped": False}
    assert not Assignment.objects.filter(profile_id=ids[5]).exists()  # never a participant
    assert reader.get(f"/api/v1/profiles/{uuid.uuid4()}/campaigns/spring").status_code == 404
    assert reader.get(f"/api/v1/profiles/{ids[0]}/campaigns/nope").json()["code"] == "unknown_campaign"

    bulk = reader.post("/api/v1/campaigns/spring/assignments",
                       {"profile_ids": [str(p) for p in ids] + [str(uuid.uuid4())]}, format="json").json()["results"]
    assert bulk[0]["variant"] == first["variant"]
    assert [r["in_experiment"] for r in bulk[:6]] == [True] * 4 + [False] * 2
    assert bulk[6]["status"] == "unknown_profile"

    stopped = writer.post("/api/v1/campaigns/spring/stop").json()
    assert stopped["status"] == "stopped"
    after = reader.get(f"/api/v1/profiles/{ids[0]}/campaigns/spring").json()
    assert after["in_experiment"] is False and after["reason"] == "not_running"


def test_assignment_is_deterministic_per_salt_and_follows_the_weights(source_factory):
    shop = source_factory("shop")
    ids = people(shop, 200)
    campaign = campaign_create(key="split", name="s", actor="t", metric={"event": "purchase"},
                               variants=[{"key": "a", "weight": 1}, {"key": "b", "weight": 3}])
    arms = [assignment_get(campaign=campaign, profile_id=p, accessor=None)["variant"] for p in ids]
    assert 0.6 < arms.count("b") / len(arms) < 0.9
    other = campaign_create(key="split2", name="s", actor="t", metric={"event": "purchase"},
                            variants=[{"key": "a", "weight": 1}, {"key": "b", "weight": 3}])
    assert other.salt != campaign.salt
    assert [assignment_get(campaign=other, profile_id=p, accessor=None)["variant"] for p in ids] != arms


def test_audience_rule_uses_only_non_personal_attributes(source_factory):
    shop = source_factory("shop")
    ids = people(shop, 4)
    writer = client_with("campaigns:write")
    bad = writer.post("/api/v1/campaigns", {**BODY, "audience": {"rule": {"attribute": "email", "op": "exists"}}},
                      format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "personal_attribute_in_rule"
    campaign = campaign_create(key="de", name="DE only", actor="t", metric={"event": "purchase"},
                               variants=BODY["variants"], audience={"rule": {"attribute": "country", "value": "DE"}})
    answers = [assignment_get(campaign=campaign, profile_id=p, accessor=None) for p in ids]
    assert [a["in_experiment"] for a in answers] == [False, True, False, True]
    assert answers[0]["reason"] == "not_in_audience"


def _purchases(shop, ids, rate_by_arm, campaign, rng):
    arms = {a.profile_id: a.variant for a in Assignment.objects.filter(campaign=campaign)}
    events = [{"profile_id": str(p), "type": "purchase", "item_id": "sku1", "price": "20.00", "quantity": 1}
              for p in ids if p in arms and rng.random() < rate_by_arm[arms[p]]]
    events_ingest(source=shop, events=events)


def test_bandit_moves_towards_the_better_arm_and_withdrawal_removes_at_once(source_factory):
    shop = source_factory("shop")
    ids = people(shop, 120)
    campaign = campaign_create(key="bandit", name="b", actor="t", allocation="bandit", warmup=20, min_weight=0.05,
                               metric={"event": "purchase"}, variants=[{"key": "a"}, {"key": "b"}])
    for p in ids:
        assignment_get(campaign=campaign, profile_id=p, accessor=None)
    _purchases(shop, ids, {0: 0.05, 1: 0.6}, campaign, np.random.default_rng(0))
    weights = campaign_weights_recompute(campaign_id=campaign.id, rng=np.random.default_rng(0))
    assert weights[1] > 0.9 and weights[0] == pytest.approx(0.05)

    # Everyone on arm b withdraws marketing: at once out of the allocation (and the results).
    b_people = list(Assignment.objects.filter(campaign=campaign, variant=1).values_list("profile_id", flat=True))
    for p in b_people:
        consent_set(profile_id=p, purpose="marketing", granted=False)
    assert Assignment.objects.filter(campaign=campaign, withdrawn_at__isnull=True, variant=1).count() == 0
    assert assignment_get(campaign=campaign, profile_id=b_people[0], accessor=None)["reason"] == "withdrawn"
    assert campaign_analysis(campaign=campaign)["arms"][1]["participants"] == 0
    assert campaign_weights_recompute(campaign_id=campaign.id) is None  # arm b has no one left: warming up


def test_results_are_dp_releases_charged_once_a_day(source_factory, monkeypatch):
    # A large ε keeps 60 people's noise small enough to read a lift (the default is 0.05 a day).
    monkeypatch.setitem(results_service.EPSILON, "counts", 0.9)
    shop = source_factory("shop")
    ids = people(shop, 60)
    campaign = campaign_create(key="res", name="r", actor="t", metric={"event": "purchase"}, variants=BODY["variants"])
    for p in ids:
        assignment_get(campaign=campaign, profile_id=p, accessor=None)
    _purchases(shop, ids, {0: 0.2, 1: 0.5}, campaign, np.random.default_rng(1))
    reader = client_with("campaigns:read")
    assert reader.get("/api/v1/campaigns/res/results").json()["arms"] == []
    releases = campaign_results_release(campaign_id=campaign.id)
    assert campaign_results_release(campaign_id=campaign.id)[0].id == releases[0].id  # asked again: the same
    body = reader.get("/api/v1/campaigns/res/results").json()
    assert body["always_valid"] is True and body["privacy"]["epsilon"] == pytest.approx(0.9)
    assert [a["variant"] for a in body["arms"]] == ["control", "discount"]
    lift = body["arms"][1]["lift"]
    assert body["arms"][0]["lift"] is None and lift["ci"][0] < lift["estimate"] < lift["ci"][1]
    assert DpRelease.objects.get(pk=releases[0].id).values["counts"] != []
    # The release's counts are noisy: they are not exactly the true counts on every arm and category.
    exact = campaign_analysis(campaign=campaign)
    assert exact["participants"] == 60


def test_export_and_erasure_reach_assignments(source_factory):
    shop = source_factory("shop")
    [pid] = people(shop, 1)
    campaign = campaign_create(key="exp", name="e", actor="t", metric={"event": "purchase"}, variants=BODY["variants"])
    assignment_get(campaign=campaign, profile_id=pid, accessor=None)
    sections = {}
    for part in registry.run(registry.EXPORT, profile_id=pid, aliases=[]):
        sections.update(part)
    assert sections["campaigns"][0]["campaign"] == "exp"
    registry.run(registry.ERASE, profile_id=pid)
    assert not Assignment.objects.filter(profile_id=pid).exists()
    assert Campaign.objects.filter(key="exp").exists()


def test_a_release_past_the_months_pace_is_refused_cleanly(source_factory, monkeypatch):
    """A fresh month's period row: the refusal message used to fail on its integer spend (a 500)."""
    from personalization.errors import BudgetExceeded

    monkeypatch.setitem(results_service.EPSILON, "counts", 1.5)
    campaign = campaign_create(key="big", name="b", actor="t", metric={"event": "purchase"}, variants=BODY["variants"])
    with pytest.raises(BudgetExceeded):
        campaign_results_release(campaign_id=campaign.id)
    assert not DpRelease.objects.exists()


def test_campaign_analyze_prints_exact_figures(source_factory, capsys):
    import json

    from django.core.management import CommandError, call_command

    shop = source_factory("shop")
    ids = people(shop, 40)
    campaign = campaign_create(key="an", name="a", actor="t", metric={"event": "purchase"}, variants=BODY["variants"])
    for p in ids:
        assignment_get(campaign=campaign, profile_id=p, accessor=None)
    _purchases(shop, ids, {0: 0.3, 1: 0.6}, campaign, np.random.default_rng(4))
    call_command("campaign_analyze", "an")
    body = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert body["participants"] == 40 and set(body["off_policy"]) == {"only:control", "only:discount", "uniform",
                                                                      "current"}
    assert body["off_policy"]["only:control"]["snips"] == pytest.approx(body["arms"][0]["mean"], abs=1e-6)
    with pytest.raises(CommandError):
        call_command("campaign_analyze", "missing")


def test_a_merge_keeps_one_assignment_per_person(source_factory):
    from cdp.services.resolution import profiles_ingest

    shop = source_factory("shop")
    first, second = people(shop, 2)
    one = campaign_create(key="m1", name="m", actor="t", metric={"event": "purchase"}, variants=BODY["variants"])
    two = campaign_create(key="m2", name="m", actor="t", metric={"event": "purchase"}, variants=BODY["variants"])
    kept = assignment_get(campaign=one, profile_id=first, accessor=None)["variant"]
    assignment_get(campaign=one, profile_id=second, accessor=None)
    assignment_get(campaign=two, profile_id=second, accessor=None)
    # The same CRM id given with each person's address merges them.
    results = profiles_ingest(source=shop, records=[
        {"external_id": "crm-a", "identifiers": {"email": "c0@example.com", "crm_id": "42"}},
        {"external_id": "crm-b", "identifiers": {"email": "c1@example.com", "crm_id": "42"}}])
    assert results[1].status == "merged", results[1]
    survivor = uuid.UUID(str(results[1].profile_id))
    rows = Assignment.objects.filter(profile_id__in=[first, second])
    assert {(r.campaign.key, r.profile_id) for r in rows} == {("m1", survivor), ("m2", survivor)}
    if survivor == first:
        assert rows.get(campaign=one).campaign.variants[rows.get(campaign=one).variant]["key"] == kept
    absorbed = second if survivor == first else first
    answer = client_with("campaigns:read").get(f"/api/v1/profiles/{absorbed}/campaigns/m1")
    assert answer.status_code == 409 and answer.json()["code"] == "merged"
    assert uuid.UUID(answer.json()["merged_into"]) == survivor


def test_frequency_cap_counts_exposures_in_the_window(source_factory):
    shop = source_factory("shop")
    [pid] = people(shop, 1)
    campaign = campaign_create(key="cap", name="c", actor="t", metric={"event": "purchase"},
                               variants=BODY["variants"], frequency_cap={"exposures": 2, "hours": 24})
    assert assignment_get(campaign=campaign, profile_id=pid, accessor=None)["capped"] is False
    exposure = {"profile_id": str(pid), "type": "custom", "name": "Experiment Viewed", "item_id": "cap"}
    events_ingest(source=shop, events=[{**exposure, "message_id": "e1"},
                                       {**exposure, "item_id": "other", "message_id": "e2"}])
    assert assignment_get(campaign=campaign, profile_id=pid, accessor=None)["capped"] is False  # another campaign's
    events_ingest(source=shop, events=[{**exposure, "message_id": "e3"}])
    answer = assignment_get(campaign=campaign, profile_id=pid, accessor=None)
    assert answer["capped"] is True and answer["in_experiment"] is True
