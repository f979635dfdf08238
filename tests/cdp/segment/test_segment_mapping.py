"""Segment message → record/event dicts (cdp/segment/mapping.py): no database."""

from __future__ import annotations

import pytest

from cdp.segment.mapping import (
    MessageInvalid,
    attribute_name,
    message_for_log,
    message_identifiers,
    message_map,
    message_type_label,
    traits_to_attributes,
)


def mapped(message, **kwargs):
    return message_map(message, index=0, **kwargs)


def invalid_codes(message, **kwargs):
    with pytest.raises(MessageInvalid) as caught:
        mapped(message, **kwargs)
    return caught.value.codes


@pytest.mark.parametrize(("trait", "name"), [
    ("firstName", "first_name"), ("lastName", "last_name"), ("createdAt", "created_at"),
    ("first_name", "first_name"), ("Favorite Color", "favorite_color"), ("plan-tier", "plan_tier"),
    ("userID", "user_id"), ("HTTPReferrer", "http_referrer"), ("address2", "address2"),
    ("prénom", "prenom"), ("$browser", "browser"), ("2fa", None), ("名前", None), ("", None),
])
def test_attribute_names_become_snake_case(trait, name):
    assert attribute_name(trait) == name


def test_traits_to_attributes_skips_identifiers_keeps_nested_values_and_counts_dropped():
    attributes, dropped = traits_to_attributes({
        "email": "a@example.com", "phone": "+442079460018", "id": "u1", "firstName": "Ada",
        "address": {"city": "London", "postalCode": "N1"}, "tags": ["a", "b"], "2fa": True,
    })
    assert attributes == {"first_name": "Ada", "address": {"city": "London", "postalCode": "N1"}, "tags": ["a", "b"]}
    assert dropped == 1


def test_a_snake_case_trait_wins_over_its_camel_case_spelling():
    attributes, _ = traits_to_attributes({"firstName": "camel", "first_name": "snake"})
    assert attributes == {"first_name": "snake"}


def test_identify_becomes_one_record_with_identifiers_and_attributes():
    result = mapped({
        "type": "identify", "userId": "u1", "anonymousId": "a1", "timestamp": "2024-05-01T10:00:00Z",
        "traits": {"email": "Ada@Example.com", "firstName": "Ada", "plan": "pro"},
        "context": {"traits": {"phone": "+442079460018"}},
    })
    assert result.events == [] and result.link is None
    assert result.records == [{
        "external_id": "segment:user:u1",
        "identifiers": {"user_id": "u1", "anonymous_id": "a1", "phone": "+442079460018", "email": "Ada@Example.com"},
        "attributes": {"first_name": "Ada", "plan": "pro"},
        "observed_at": "2024-05-01T10:00:00Z",
    }]


def test_identify_before_sign_in_is_keyed_by_the_anonymous_id():
    [record] = mapped({"type": "identify", "anonymousId": "a1", "traits": {"plan": "free"}}).records
    assert record["external_id"] == "segment:anonymous:a1"
    assert record["identifiers"] == {"anonymous_id": "a1"}


def test_numeric_ids_are_strings_and_junk_ids_are_dropped():
    [record] = mapped({"type": "identify", "userId": 42, "anonymousId": "null"}).records
    assert record["identifiers"] == {"user_id": "42"}
    assert record["external_id"] == "segment:user:42"


def test_junk_only_ids_are_no_usable_identifier_not_a_shared_record():
    assert invalid_codes({"type": "identify", "userId": "0", "traits": {}}) == ["no_usable_identifier"]


def test_product_viewed_is_a_view_with_item_and_price():
    result = mapped({"type": "track", "userId": "u1", "event": "Product Viewed", "messageId": "m1",
                     "properties": {"product_id": 507, "price": 19.99}, "timestamp": "2024-05-01T10:00:00Z"})
    assert result.events == [{
        "profile": {"user_id": "u1"}, "occurred_at": "2024-05-01T10:00:00Z", "type": "view",
        "name": "Product Viewed", "item_id": "507", "quantity": None, "price": 19.99, "message_id": "m1",
    }]


def test_product_added_uses_the_sku_when_there_is_no_product_id_and_matches_case_insensitively():
    [event] = mapped({"type": "track", "anonymousId": "a1", "event": "product  added",
                      "properties": {"sku": "SKU-1", "quantity": "2", "price": "5.00"}}).events
    assert (event["type"], event["item_id"], event["quantity"], event["price"]) == ("add_to_cart", "SKU-1", 2, "5.00")


def test_v1_event_names_are_understood():
    [event] = mapped({"type": "track", "userId": "u1", "event": "Viewed Product", "properties": {"id": "p9"}}).events
    assert (event["type"], event["item_id"]) == ("view", "p9")


def test_product_viewed_without_a_product_is_invalid():
    assert invalid_codes({"type": "track", "userId": "u1", "event": "Product Viewed", "properties": {}}) == [
        "missing_product_id"]


def test_order_completed_is_one_purchase_per_product_with_stable_message_ids():
    result = mapped({"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "m7",
                     "properties": {"order_id": "o1", "products": [
                         {"product_id": "p1", "quantity": 2, "price": 10},
                         {"name": "no id"},
                         {"sku": "s3", "price": 3.5},
                     ]}})
    assert [(e["type"], e["item_id"], e["quantity"], e["price"], e["message_id"]) for e in result.events] == [
        ("purchase", "p1", 2, 10, "m7:0"), ("purchase", "s3", 1, 3.5, "m7:2")]
    assert result.codes == ["missing_product_id"]  # stored in part; the operator sees the rest


def test_order_completed_without_products_is_a_custom_event():
    [event] = mapped({"type": "track", "userId": "u1", "event": "Order Completed", "properties": {"total": 5}}).events
    assert (event["type"], event["name"]) == ("custom", "Order Completed")


def test_other_tracks_are_custom_events_named_by_the_event():
    [event] = mapped({"type": "track", "userId": "u1", "event": " Signed Up ", "messageId": "m2"}).events
    assert (event["type"], event["name"], event["message_id"]) == ("custom", "Signed Up", "m2")


@pytest.mark.parametrize(("message_type", "name"), [("page", "Page Viewed"), ("screen", "Screen Viewed"),
                                                    ("group", "Group")])
def test_page_screen_and_group_are_custom_events(message_type, name):
    [event] = mapped({"type": message_type, "userId": "u1", "name": "Home",
                      "properties": {"url": "https://shop.example/?token=secret"}}).events
    assert (event["type"], event["name"]) == ("custom", name)
    assert "secret" not in repr(event)  # properties (URLs) are not stored


def test_context_traits_email_joins_an_events_identifiers_and_asks_for_a_link():
    result = mapped({"type": "track", "userId": "u1", "anonymousId": "a1", "event": "Clicked",
                     "context": {"traits": {"email": "ada@example.com", "firstName": "Ada"}}})
    assert result.events[0]["profile"] == {"user_id": "u1", "anonymous_id": "a1", "email": "ada@example.com"}
    assert result.link["identifiers"] == result.events[0]["profile"]
    assert result.link["external_id"].startswith("segment:link:")
    assert "attributes" not in result.link  # context traits are identifiers only


def test_an_event_with_one_identifier_needs_no_link():
    assert mapped({"type": "track", "anonymousId": "a1", "event": "Clicked"}).link is None


def test_batch_context_applies_and_the_message_context_wins():
    result = mapped({"type": "track", "anonymousId": "a1", "event": "Clicked",
                     "context": {"traits": {"email": "own@example.com"}}},
                    context={"traits": {"email": "batch@example.com", "phone": "+442079460018"}})
    assert result.events[0]["profile"]["email"] == "own@example.com"
    assert "phone" not in result.events[0]["profile"]  # traits are replaced as a whole, like Segment


def test_alias_links_user_and_previous_id_in_one_record():
    result = mapped({"type": "alias", "userId": "u1", "previousId": "a1", "messageId": "m3"})
    [record] = result.records
    assert record["identifiers"] == {"user_id": "u1", "anonymous_id": "a1"}
    assert record["external_id"].startswith("segment:alias:")
    assert result.alias_previous_id == "a1"
    again = mapped({"type": "alias", "userId": "u1", "previousId": "a1", "messageId": "other"})
    assert again.records[0]["external_id"] == record["external_id"]  # re-sent alias → unchanged


def test_alias_needs_both_ids():
    assert invalid_codes({"type": "alias", "userId": "u1"}) == ["missing_previous_id"]
    assert invalid_codes({"type": "alias"}) == ["missing_user_id", "missing_previous_id"]


@pytest.mark.parametrize(("fields", "expected"), [
    ({"timestamp": "2024-01-01T00:00:00Z", "originalTimestamp": "2023-01-01T00:00:00Z"}, "2024-01-01T00:00:00Z"),
    ({"originalTimestamp": "2023-01-01T00:00:00Z", "sentAt": "2022-01-01T00:00:00Z"}, "2023-01-01T00:00:00Z"),
    ({"sentAt": "2022-01-01T00:00:00Z"}, "2022-01-01T00:00:00Z"),
    ({}, "2021-01-01T00:00:00Z"),
])
def test_occurred_at_prefers_timestamp(fields, expected):
    [event] = mapped({"type": "track", "userId": "u1", "event": "E", **fields},
                     sent_at="2021-01-01T00:00:00Z").events
    assert event["occurred_at"] == expected


@pytest.mark.parametrize(("message", "codes"), [
    ("not a message", ["not_an_object"]),
    ({"type": "launch", "userId": "u1"}, ["unknown_type"]),
    ({"userId": "u1"}, ["unknown_type"]),
    ({"type": "track", "event": "E"}, ["missing_user_id_and_anonymous_id"]),
    ({"type": "track", "userId": {"nested": 1}, "event": "E"}, ["invalid_user_id"]),
    ({"type": "track", "userId": "u1"}, ["missing_event"]),
    ({"type": "identify", "userId": "u1", "traits": ["x"]}, ["invalid_traits"]),
    ({"type": "track", "userId": "u1", "event": "E", "properties": "x"}, ["invalid_properties"]),
    ({"type": "track", "userId": "u1", "event": "E", "context": 5}, ["invalid_context"]),
    ({"type": "track", "userId": "u1", "event": "Order Completed", "properties": {"products": "x"}},
     ["invalid_products"]),
    ({"type": "track", "userId": "u1", "event": "E", "properties": {"blob": "x" * 40_000}}, ["message_too_large"]),
])
def test_malformed_messages_raise_with_codes(message, codes):
    assert invalid_codes(message) == codes


def test_message_identifiers_lists_everything_a_failed_message_names():
    pairs = message_identifiers({"type": "alias", "userId": "u1", "previousId": "p1",
                                 "context": {"traits": {"email": "ada@example.com"}}})
    assert set(pairs) == {("user_id", "u1"), ("user_id", "p1"), ("anonymous_id", "p1"), ("email", "ada@example.com")}


def test_the_logged_message_never_keeps_the_write_key_and_unknown_types_are_labelled():
    assert message_for_log({"type": "track", "writeKey": "wk_secret"}) == {"type": "track"}
    assert message_type_label({"type": "Hello ada@example.com"}) == "unknown"
    assert message_type_label({"type": "page"}) == "page"
