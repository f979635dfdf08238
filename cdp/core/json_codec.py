"""JSON in and out of the hot paths.

`strict_json_loads` reads request bodies: only what RFC 8259 JSON can hold and UTF-8 can
carry, so nothing downstream meets NaN or a string it cannot encode. `json_bytes` writes
compact JSON by orjson (a tenth of the stdlib encoder's time on a
record-sized dict), with the stdlib's output wherever orjson would differ in meaning.

Both produce the same text for what the API accepts (str keys; strings, 64-bit integers,
booleans, null, lists, objects) and the same value for floats, some spelled otherwise
(0.00001 for 1e-05): nothing here depends on the spelling, since ciphertext plaintexts are
parsed back and PostgreSQL stores jsonb parsed. The request parsers refuse NaN and
Infinity, which orjson would write as null. Integers beyond 64 bits, non-str keys and anything else
orjson refuses go to the stdlib encoder with the same separators, ordering and `default`.
Datetimes and dataclasses go through `default`, as they do with the stdlib.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson


class NotJson(ValueError):
    """The text is not JSON this system stores (the message never quotes the text)."""


def strict_json_loads(text: str | bytes):
    """json.loads, refusing NaN and Infinity, and escaped surrogates that pair with nothing
    (valid JSON syntax, but no UTF-8 text: storing or encrypting them would fail later).

    Integers of any size stay exact (orjson's reader would turn big ones into floats).
    """
    try:
        if isinstance(text, bytes | bytearray):
            text = text.decode("utf-8")  # UTF-8 only, as RFC 8259 asks (json.loads would guess)
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise NotJson("not valid JSON") from None
    # A lone surrogate can only come from a \uD800-\uDFFF escape: bodies without one skip the walk.
    if ("\\ud" in text or "\\uD" in text) and _holds_lone_surrogate(value):
        raise NotJson("a string holds an unpaired surrogate")
    return value


def _reject_constant(name: str):
    raise ValueError("NaN and Infinity are not JSON")


def _holds_lone_surrogate(value) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode()
                except UnicodeEncodeError:
                    return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def json_bytes(value: Any, *, sort_keys: bool = False, default: Callable[[Any], Any] | None = None) -> bytes:
    """json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=..., default=...)
    as UTF-8 bytes."""
    try:
        return orjson.dumps(value, default=default, option=_OPTIONS | orjson.OPT_SORT_KEYS if sort_keys else _OPTIONS)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys,
                          default=default).encode()


# A character of the stdlib's default output (", " and ": " separators, non-ASCII as
# \\uXXXX escapes, astral characters as two) takes at most three bytes of json_bytes':
# "," becomes ", ", a 2-4 byte UTF-8 character 6 or 12 characters, numbers barely change.
_STDLIB_EXPANSION = 3


def stdlib_length_exceeds(value: Any, limit: int) -> bool:
    """len(json.dumps(value, default=str)) > limit, measured by the stdlib only near the limit."""
    if len(json_bytes(value, default=str)) * _STDLIB_EXPANSION <= limit:
        return False
    return len(json.dumps(value, default=str)) > limit
