"""What a verification found: the first finding, counts, and the heads as read."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import NamedTuple

from consent.ledger.chain import head_mac


@dataclass
class Finding:
    """The first thing found wrong: what, where, and one plain sentence about it."""

    code: str
    profile_id: str
    position: int | None
    event_id: str | None
    message: str


@dataclass
class VerifyReport:
    subjects: int = 0
    events: int = 0
    states: int = 0
    checkpoint_subjects: int = 0
    finding: Finding | None = None
    seconds: float = 0.0
    checked_heads: set = field(default_factory=set, repr=False)

    @property
    def intact(self) -> bool:
        return self.finding is None


class HeadRow(NamedTuple):
    length: int
    last_link: str
    jurisdiction: str
    jurisdiction_changes: int
    mac: str

    def mac_valid(self, pid, key: bytes) -> bool:
        return hmac.compare_digest(self.mac, head_mac(pid, self.length, self.last_link, self.jurisdiction,
                                                      self.jurisdiction_changes, key=key))
