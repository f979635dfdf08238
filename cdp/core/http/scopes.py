"""The API key scopes of CONTRACT.md, one per kind of access."""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    PROFILES_READ = "profiles:read"
    PROFILES_WRITE = "profiles:write"
    EVENTS_WRITE = "events:write"
    EVENTS_READ = "events:read"
    ITEMS_WRITE = "items:write"
    CONSENT_READ = "consent:read"
    CONSENT_WRITE = "consent:write"
    AUDIT_READ = "audit:read"
    DSR_READ = "dsr:read"
    DSR_WRITE = "dsr:write"
    # Reading an access/portability export: everything held on a person, so apart from dsr:read.
    DSR_EXPORT = "dsr:export"
    RECOMMENDATIONS_READ = "recommendations:read"
    SEGMENTS_READ = "segments:read"
    CHANGES_READ = "changes:read"
    WEBHOOKS_MANAGE = "webhooks:manage"
    # Segment membership listings are personal data: a scope apart from segments:read,
    # whose figures are differentially private.
    SEGMENTS_MEMBERS = "segments:members"
    # A person's churn risk and expected value (personal data, under `analytics`).
    PREDICTIONS_READ = "predictions:read"
    CAMPAIGNS_READ = "campaigns:read"
    CAMPAIGNS_WRITE = "campaigns:write"


SCOPES: tuple[str, ...] = tuple(scope.value for scope in Scope)
