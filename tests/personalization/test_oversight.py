"""Operators' blocks and pins: validated, audited, enforced by the pipeline and the real-time refresh."""

from __future__ import annotations

import pytest
from personalization_helpers import shop_population

from consent.models import AccessLog
from personalization.errors import InvalidOverride
from personalization.models import Recommendation, RecommendationOverride
from personalization.services import pipeline, realtime
from personalization.services.oversight import (
    Overrides,
    overrides_in_force,
    recommendation_override_create,
    recommendation_override_lift,
)

pytestmark = pytest.mark.django_db


def run_sync():
    run = pipeline.pipeline_run_create(params={"chunk_size": 16, "k": 3})
    return pipeline.pipeline_run_sync(run_id=run.id)


def audit(action: str) -> list[AccessLog]:
    return list(AccessLog.objects.filter(purpose=action).order_by("id"))


def test_an_override_needs_a_catalogue_item_a_known_segment_and_a_reason():
    shop_population(people=5)
    with pytest.raises(InvalidOverride):
        recommendation_override_create(kind="block", item_id="sku-nope", reason="recall", actor="op")
    with pytest.raises(InvalidOverride):
        recommendation_override_create(kind="block", item_id="sku-books-1", reason="  ", actor="op")
    with pytest.raises(InvalidOverride):
        recommendation_override_create(kind="pin", item_id="sku-books-1", reason="launch", actor="op",
                                       segment_name="Nobody")
    with pytest.raises(InvalidOverride):
        recommendation_override_create(kind="hide", item_id="sku-books-1", reason="launch", actor="op")
    assert not RecommendationOverride.objects.exists() and not audit("recommendation.block")


def test_creating_and_lifting_are_in_the_audit_trail():
    shop_population(people=5)
    block = recommendation_override_create(kind="block", item_id="sku-books-1", reason="Product recall", actor="op")
    pin = recommendation_override_create(kind="pin", item_id="sku-garden-2", reason="Spring launch", actor="op",
                                         segment_name="Loyal")
    [entry] = audit("recommendation.block")
    assert entry.detail == {"override_id": block.id, "item_id": "sku-books-1", "segment": None,
                            "reason": "Product recall"}
    assert audit("recommendation.pin")[0].detail["segment"] == "Loyal"
    assert overrides_in_force() == Overrides(blocked=frozenset({"sku-books-1"}), pins={"Loyal": ["sku-garden-2"]})
    recommendation_override_lift(override_id=block.id, actor="op2")
    assert audit("recommendation.block_lifted")[0].detail["item_id"] == "sku-books-1"
    assert overrides_in_force().blocked == frozenset()
    with pytest.raises(InvalidOverride):
        recommendation_override_lift(override_id=block.id, actor="op2")  # already lifted
    assert pin.lifted_at is None


def test_pins_for_a_segment_come_before_everyones_and_never_a_blocked_item():
    overrides = Overrides(blocked=frozenset({"x"}), pins={"Loyal": ["a", "x"], "": ["b", "a"]})
    assert overrides.pins_for("Loyal") == [("a", True), ("b", False)]
    assert overrides.pins_for("New") == [("b", False), ("a", False)]
    assert overrides.pins_for(None) == [("b", False), ("a", False)]


def test_the_pipeline_leaves_blocked_items_out_and_puts_pins_first():
    shop = shop_population(people=40)
    first = run_sync()
    # Some person's first item, not the one pinned below (blocking that would leave nothing pinned).
    popular = (Recommendation.objects.filter(run=first, rank=1).exclude(item_id="sku-garden-9")
               .order_by("item_id").values_list("item_id", flat=True).first())
    recommendation_override_create(kind="block", item_id=popular, reason="Out of stock", actor="op")
    recommendation_override_create(kind="pin", item_id="sku-garden-9", reason="Launch", actor="op")
    run = run_sync()
    recs = list(Recommendation.objects.filter(run=run))
    assert recs and popular not in {r.item_id for r in recs}
    pinned = [r for r in recs if r.item_id == "sku-garden-9"]
    assert pinned and all(r.rank == 1 for r in pinned)
    for rec in pinned:
        assert rec.explanation["text"] == "Chosen by our team for all our customers."
        assert rec.explanation["pinned"] == {"segment": None} and rec.explanation["parts"] == {}
    # Someone who bought the pinned item does not get it back.
    from cdp.models import Event

    buyers = set(Event.objects.filter(item_id="sku-garden-9", type="purchase").values_list("profile_id", flat=True))
    listed = {r.profile_id for r in recs}
    assert buyers & shop.personalization, "the shop has buyers of the pinned item"
    assert not buyers & {r.profile_id for r in pinned}
    assert listed - buyers <= {r.profile_id for r in pinned}


@pytest.mark.django_db(transaction=True)
def test_the_realtime_refresh_applies_a_block_made_after_the_run():
    shop = shop_population(people=30)
    run_sync()
    person = next(pid for pid in shop.profile_ids if pid in shop.personalization)
    served = realtime.served_run()
    top = Recommendation.objects.filter(run=served, profile_id=person, rank=1).values_list("item_id", flat=True).get()
    recommendation_override_create(kind="block", item_id=top, reason="Complaint", actor="op")
    assert realtime.recommendations_refresh(profile_ids=[person]) == 1
    items = set(Recommendation.objects.filter(run=served, profile_id=person).values_list("item_id", flat=True))
    assert items and top not in items
