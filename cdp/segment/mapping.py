"""Segment Tracking API messages → Tessera profile records and events.

Pure functions: no database (settings only for the identifier blocklist). The services
feed the records to `profiles_ingest` and the events to `events_ingest`, which validate
identifiers, timestamps and numbers; this module only decides the shape.

Choices (also in cdp/segment/README.md):

- Identifiers: `userId` → `user_id` (source-scoped by resolution), `anonymousId` →
  `anonymous_id`, `traits.email` / `traits.phone` → `email` / `phone`. For identify the
  traits are `context.traits` overlaid by `traits`; for every other type `context.traits`
  contributes identifiers only, never attributes (SDKs copy cached traits there, they are
  not a fresh observation).
- Attributes: identify traits other than identifiers, named in snake_case (`firstName` →
  `first_name`, `Favorite Color` → `favorite_color`, accents folded). A trait whose name
  still is not a valid attribute name (`2fa`, a name in another script) is dropped and
  counted. Nested objects and lists (`address`, `company`) are kept whole as JSON values:
  attributes are encrypted JSON anyway, and flattening would invent names. `id`,
  `userId` and `anonymousId` traits repeat identifiers and are skipped.
- identify → one record, external id `segment:user:{userId}` (or
  `segment:anonymous:{anonymousId}` before sign-in), so re-sending the same traits is
  answered `unchanged`.
- alias → one record naming `userId` and `previousId` (as `anonymous_id`) together, so
  ordinary resolution links or merges the two profiles. Whether previousId is really a
  user id is a database question: the services look it up.
- track: e-commerce spec v2 (v1 names accepted too, case-insensitively): `Product
  Viewed` → view, `Product Added` → add_to_cart (item id from `product_id`, else `sku`,
  else `id`; price and quantity as sent), `Order Completed` with `products[]` → one
  purchase per product (quantity defaults to 1) whose message id is `{messageId}:{index}`
  so a re-sent order is de-duplicated product by product. Other events (and Order
  Completed without products) → custom with `name` = the event name. `Experiment
  Viewed` (a campaign exposure) → custom `Experiment Viewed` with `properties.experiment_id`
  (the campaign key) as its item id. Properties, context
  (IP, user agent, page URL) and integrations are not stored: events hold no personal
  fields.
- page → custom `Page Viewed`, screen → custom `Screen Viewed`, group → custom `Group`
  (group traits describe a company, never the person).
- occurred_at: `timestamp`, else `originalTimestamp`, else the message's or the batch's
  `sentAt`, else the time of receipt.
- An event naming two or more identifiers also yields a link record, so a track with
  both `userId` and `anonymousId` stitches the visitor to the user even when the
  identify call was lost; the services send it only when the identifiers are not
  already one profile's.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field

from django.conf import settings

from cdp.core.identifiers import ATTRIBUTE_NAME, is_junk
from cdp.core.json_codec import stdlib_length_exceeds

MESSAGE_TYPES = ("identify", "track", "page", "screen", "group", "alias")
MAX_MESSAGE_BYTES = 32 * 1024  # Segment's own per-message limit

# Event names are matched after case-folding and collapsing whitespace.
_EVENT_TYPES = {
    "product viewed": "view", "viewed product": "view",
    "product added": "add_to_cart", "added product": "add_to_cart",
}
_ORDER_COMPLETED = {"order completed", "completed order"}
_CUSTOM_NAMES = {"page": "Page Viewed", "screen": "Screen Viewed", "group": "Group"}
_IDENTITY_TRAITS = {"email", "phone"}
_SKIPPED_TRAITS = {"id", "user_id", "anonymous_id"}
_ID_FIELDS = (("userId", "user_id"), ("anonymousId", "anonymous_id"))

_ACRONYM_BOUNDARY = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL_BOUNDARY = re.compile(r"([a-z0-9])([A-Z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")


class MessageInvalid(Exception):
    """The message cannot be stored at all; `codes` are stable snake_case strings."""

    def __init__(self, codes: list[str]):
        super().__init__("message invalid")
        self.codes = codes


@dataclass
class Mapped:
    index: int
    type: str
    records: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    link: dict | None = None              # record stitching an event's identifiers, if needed
    alias_previous_id: str | None = None  # for the services' user-id check
    codes: list[str] = field(default_factory=list)  # partly stored: what was left out
    dropped_traits: int = 0


def message_map(message, *, index: int, context: dict | None = None, sent_at=None) -> Mapped:
    """One Segment message as records and events; raises MessageInvalid."""
    if not isinstance(message, dict):
        raise MessageInvalid(["not_an_object"])
    message_type = message.get("type")
    if message_type not in MESSAGE_TYPES:
        raise MessageInvalid(["unknown_type"])
    if stdlib_length_exceeds(message, MAX_MESSAGE_BYTES):
        raise MessageInvalid(["message_too_large"])
    context = _merged_context(context, message.get("context"))
    mapped = Mapped(index=index, type=message_type)
    occurred_at = _occurred_at(message, sent_at)
    if message_type == "alias":
        _map_alias(message, mapped, occurred_at)
        return mapped
    identifiers = _identifiers(message)
    if message_type == "identify":
        traits = _object(message, "traits", "invalid_traits")
        external_id = _identify_external_id(identifiers)
        identifiers.update(_trait_identifiers({**_object(context, "traits", "invalid_traits"), **traits}))
        attributes, mapped.dropped_traits = traits_to_attributes(traits)
        mapped.records.append({"external_id": external_id, "identifiers": identifiers,
                               "attributes": attributes, "observed_at": occurred_at})
        return mapped
    identifiers.update(_trait_identifiers(_object(context, "traits", "invalid_traits")))
    base = {"profile": identifiers, "occurred_at": occurred_at}
    message_id = _optional_id(message, "messageId", "invalid_message_id")
    if message_type == "track":
        mapped.events, mapped.codes = _track_events(message, base, message_id)
    else:
        _object(message, "properties", "invalid_properties")
        mapped.events = [{**base, "type": "custom", "name": _CUSTOM_NAMES[message_type], "message_id": message_id}]
    if len(identifiers) > 1:
        mapped.link = {"external_id": "segment:link:" + _digest(sorted(identifiers.items())),
                       "identifiers": dict(identifiers), "observed_at": occurred_at}
    return mapped


def message_identifiers(message, context: dict | None = None) -> list[tuple[str, object]]:
    """Every (kind, value) a message names, best effort, for a failed message's erasure index.

    An alias's previousId is listed as both kinds it may be.
    """
    if not isinstance(message, dict):
        return []
    pairs: list[tuple[str, object]] = []
    for name, kind in _ID_FIELDS:
        if isinstance(message.get(name), (str, int)):
            pairs.append((kind, message[name]))
    if isinstance(message.get("previousId"), (str, int)):
        pairs += [("user_id", message["previousId"]), ("anonymous_id", message["previousId"])]
    for holder in (message, message.get("context"), context):
        traits = holder.get("traits") if isinstance(holder, dict) else None
        if isinstance(traits, dict):
            pairs += [(name, traits[name]) for name in ("email", "phone") if isinstance(traits.get(name), str)]
    return pairs


def message_for_log(message):
    """The message as kept in the error log: the write key is a secret, never stored."""
    if isinstance(message, dict) and "writeKey" in message:
        return {k: v for k, v in message.items() if k != "writeKey"}
    return message


def message_type_label(message) -> str:
    message_type = message.get("type") if isinstance(message, dict) else None
    return message_type if message_type in MESSAGE_TYPES else "unknown"


def attribute_name(trait: str) -> str | None:
    """`firstName` → `first_name`; None when no valid attribute name comes out."""
    folded = unicodedata.normalize("NFKD", str(trait))
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    name = _CAMEL_BOUNDARY.sub(r"\1_\2", _ACRONYM_BOUNDARY.sub(r"\1_\2", folded))
    name = _NON_WORD.sub("_", name.lower()).strip("_")
    return name if ATTRIBUTE_NAME.match(name) else None


def traits_to_attributes(traits: dict) -> tuple[dict, int]:
    """Attributes from identify traits, and how many traits were dropped for their name."""
    attributes: dict = {}
    dropped = 0
    # A name already in snake_case wins over a camelCase spelling of the same name.
    for trait in sorted(traits, key=lambda t: attribute_name(t) != t):
        name = attribute_name(trait)
        if name is None:
            dropped += 1
        elif name not in _IDENTITY_TRAITS | _SKIPPED_TRAITS and name not in attributes:
            attributes[name] = traits[trait]
    return attributes, dropped


# --- helpers ------------------------------------------------------------------------------
def _merged_context(batch_context, message_context) -> dict:
    # The batch envelope's context applies to every message; the message's own wins.
    batch_context = batch_context if isinstance(batch_context, dict) else {}
    if message_context is not None and not isinstance(message_context, dict):
        raise MessageInvalid(["invalid_context"])
    return {**batch_context, **(message_context or {})}


def _object(holder: dict, name: str, code: str) -> dict:
    value = holder.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MessageInvalid([code])
    return value


def _optional_id(message: dict, name: str, code: str) -> str | None:
    value = message.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise MessageInvalid([code])
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip() or None


def _usable_id(message: dict, name: str, code: str) -> str | None:
    # Junk ("null", "0", "anonymous") is dropped here, not only in resolution: external
    # ids are derived from these, and one shared "segment:user:0" record would merge
    # every visitor whose SDK sent a placeholder.
    value = _optional_id(message, name, code)
    return None if value is None or is_junk(value, settings.TESSERA_IDENTIFIER_BLOCKLIST) else value


def _identifiers(message: dict) -> dict:
    identifiers = {}
    for name, kind in _ID_FIELDS:
        value = _usable_id(message, name, f"invalid_{kind}")
        if value is not None:
            identifiers[kind] = value
    if not identifiers:
        named = any(message.get(name) not in (None, "") for name, _ in _ID_FIELDS)
        raise MessageInvalid(["no_usable_identifier" if named else "missing_user_id_and_anonymous_id"])
    return identifiers


def _trait_identifiers(traits: dict) -> dict:
    # Passed as sent: resolution normalizes them and rejects a malformed one.
    return {kind: traits[kind] for kind in ("email", "phone") if traits.get(kind) not in (None, "")}


def _occurred_at(message: dict, sent_at):
    for name in ("timestamp", "originalTimestamp", "sentAt"):
        if message.get(name) is not None:
            return message[name]
    return sent_at


def _identify_external_id(identifiers: dict) -> str:
    if "user_id" in identifiers:
        return f"segment:user:{identifiers['user_id']}"
    return f"segment:anonymous:{identifiers['anonymous_id']}"


def _map_alias(message: dict, mapped: Mapped, occurred_at) -> None:
    codes = [code for name, code in (("userId", "missing_user_id"), ("previousId", "missing_previous_id"))
             if message.get(name) in (None, "")]
    if codes:
        raise MessageInvalid(codes)
    user_id = _usable_id(message, "userId", "invalid_user_id")
    previous_id = _usable_id(message, "previousId", "invalid_previous_id")
    if user_id is None or previous_id is None:
        raise MessageInvalid(["no_usable_identifier"])
    identifiers = {"user_id": user_id}
    if previous_id != user_id:
        identifiers["anonymous_id"] = previous_id
        mapped.alias_previous_id = previous_id
    mapped.records.append({"external_id": "segment:alias:" + _digest([user_id, previous_id]),
                           "identifiers": identifiers, "observed_at": occurred_at})


def _track_events(message: dict, base: dict, message_id: str | None) -> tuple[list[dict], list[str]]:
    name = message.get("event")
    if not isinstance(name, str) or not name.strip():
        raise MessageInvalid(["missing_event"])
    properties = _object(message, "properties", "invalid_properties")
    key = " ".join(name.split()).casefold()
    if key in _EVENT_TYPES:
        item_id = _product_id(properties)
        if item_id is None:
            raise MessageInvalid(["missing_product_id"])
        return [{**base, "type": _EVENT_TYPES[key], "name": name.strip(), "item_id": item_id,
                 "quantity": _quantity(properties.get("quantity")), "price": properties.get("price"),
                 "message_id": message_id}], []
    products = properties.get("products")
    if key in _ORDER_COMPLETED and products:
        return _purchases(name.strip(), products, base, message_id)
    if key == _EXPERIMENT_VIEWED:
        # A campaign exposure: the experiment (campaign key) travels as the item, so campaigns
        # can count exposures and frequency caps without storing properties.
        experiment = _experiment_id(properties)
        if experiment is None:
            raise MessageInvalid(["missing_experiment_id"])
        return [{**base, "type": "custom", "name": "Experiment Viewed", "item_id": experiment,
                 "message_id": message_id}], []
    return [{**base, "type": "custom", "name": name.strip(), "message_id": message_id}], []


_EXPERIMENT_VIEWED = "experiment viewed"


def _experiment_id(properties: dict) -> str | None:
    value = properties.get("experiment_id")
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
        return str(value).strip()[:128]
    return None


def _purchases(name: str, products, base: dict, message_id: str | None) -> tuple[list[dict], list[str]]:
    if not isinstance(products, list):
        raise MessageInvalid(["invalid_products"])
    events, codes = [], []
    # The index in the order as sent (not among the valid products) keeps ids stable on re-send.
    for position, product in enumerate(products):
        item_id = _product_id(product) if isinstance(product, dict) else None
        if item_id is None:
            codes.append("missing_product_id")
            continue
        quantity = _quantity(product.get("quantity"))
        events.append({**base, "type": "purchase", "name": name, "item_id": item_id,
                       "quantity": 1 if quantity is None else quantity, "price": product.get("price"),
                       "message_id": f"{message_id}:{position}" if message_id else None})
    if not events:
        raise MessageInvalid(sorted(set(codes)))
    return events, sorted(set(codes))


def _product_id(properties: dict) -> str | None:
    for name in ("product_id", "sku", "id"):
        value = properties.get(name)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


def _quantity(value):
    """Whole numbers sent as floats or strings become ints; anything else is left for
    events_ingest to reject with its own code."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value


def _digest(parts) -> str:
    # Only ever stored as a blind index (external ids are), so a plain hash is enough here.
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()
