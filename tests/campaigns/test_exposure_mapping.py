"""Segment's Experiment Viewed becomes an exposure event naming the campaign."""

from __future__ import annotations

import pytest

from cdp.segment.mapping import MessageInvalid, message_map


def test_experiment_viewed_keeps_the_campaign_key_as_the_item():
    mapped = message_map({"type": "track", "userId": "u1", "event": "experiment viewed",
                          "properties": {"experiment_id": "spring", "variation_id": "b"}}, index=0)
    [event] = mapped.events
    assert (event["type"], event["name"], event["item_id"]) == ("custom", "Experiment Viewed", "spring")


def test_experiment_viewed_without_an_experiment_id_is_invalid():
    with pytest.raises(MessageInvalid) as raised:
        message_map({"type": "track", "userId": "u1", "event": "Experiment Viewed", "properties": {}}, index=0)
    assert raised.value.codes == ["missing_experiment_id"]
