"""The processing purposes Tessera knows, all consent-based out of the box."""

from __future__ import annotations

from enum import StrEnum


class Purpose(StrEnum):
    ANALYTICS = "analytics"
    PERSONALIZATION = "personalization"
    MARKETING = "marketing"
    ENRICHMENT = "enrichment"
    SALE_SHARING = "sale_sharing"


PURPOSES = tuple(p.value for p in Purpose)
