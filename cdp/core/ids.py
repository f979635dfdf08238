"""Random (version 4) UUIDs for the hot ingestion paths, at a third of uuid.uuid4()'s cost.

uuid.uuid4() asks the OS for 16 bytes and runs UUID.__init__'s argument checks for every
id; ingestion makes several ids a record. `new_uuid4` draws the bytes 4 KiB at a time
(the same os.urandom source) and sets the two fields a UUID holds directly. The ids are
equal, hash and print exactly as uuid.UUID's (tests/cdp/core/test_ids.py). A forked
child drops the parent's unused bytes, so two processes never hand out the same id.
"""

from __future__ import annotations

import os
from uuid import UUID, SafeUUID

_IDS_PER_DRAW = 256
# Version 4 in bits 76-79, the RFC 4122 variant (0b10) in bits 62-63.
_VERSION_VARIANT_MASK = ~((0xF << 76) | (0x3 << 62))
_VERSION_4 = (0x4 << 76) | (0x2 << 62)

_pool: list[int] = []


def new_uuid4() -> UUID:
    try:
        value = _pool.pop()
    except IndexError:
        value = _draw()
    uuid = object.__new__(UUID)
    object.__setattr__(uuid, "int", value)  # UUID is immutable: its own __init__ does the same
    object.__setattr__(uuid, "is_safe", SafeUUID.unknown)
    return uuid


def _draw() -> int:
    raw = os.urandom(16 * _IDS_PER_DRAW)
    _pool.extend(int.from_bytes(raw[i:i + 16]) & _VERSION_VARIANT_MASK | _VERSION_4
                 for i in range(16, len(raw), 16))
    return int.from_bytes(raw[:16]) & _VERSION_VARIANT_MASK | _VERSION_4


os.register_at_fork(after_in_child=_pool.clear)
