"""What the preference center tells a person in their own words: dates in their language and
time zone, and who looked at their data (the access log, as sentences).

The person's language comes from their profile (`language`), else their browser; their time
zone from their profile (`timezone` or `time_zone`, an IANA name), else their country's when it
has one (or a main one), else UTC, which the page then names. Access-log entries name staff by role
and integrations by the name the operator gave their API key, never by a raw key.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import cache
from pathlib import Path
from uuid import UUID

from django.contrib.auth import get_user_model
from django.utils import formats, timezone, translation

from cdp.core.http.models import ApiKey
from cdp.selectors import profile_unified_view
from cdp.staff import COMPLIANCE, OPERATOR
from consent.selectors import access_log_for_subjects

ZONE_TABLE = Path("/usr/share/zoneinfo/zone.tab")

ROLE_WORDS = {COMPLIANCE: "A member of our privacy team", OPERATOR: "A member of our operations team"}
ACTOR_WORDS = {"data_subject": "You", "system": "Our systems, automatically"}
# Why the data was read or what was done (AccessLog.purpose), as a reason a person reads.
WHY = {
    "consent_read": "to see your consent choices",
    "consent_ledger_read": "to check the record of consent decisions",
    "api_profile_read": "to read your profile",
    "api_profile_lookup": "to find your profile",
    "api_events_read": "to read your activity",
    "analytics": "for analytics (predictions about your purchases)",
    "personalization": "to personalize what you see",
    "marketing": "to choose the marketing you receive",
    "dsr_access": "to prepare the copy of your data you asked for",
    "dsr_portability": "to prepare the copy of your data you asked for",
    "dsr_erasure": "to erase your data as you asked",
    "dsr_rectification": "to correct your data as you asked",
    "subject_lookup": "looked you up to check your consent records",
    "evidence_bundle_export": "exported the proof of your consent decisions",
    "dsr_approved": "approved your request",
    "dsr_rejected": "turned down your request",
    "dsr_extended": "extended the deadline of your request",
    "merge_conflict_applied": "combined two profiles that were both yours",
    "merge_conflict_approved": "confirmed that two profiles were both yours",
    "merge.undone": "separated two profiles that had been combined",
    "ingestion_error.viewed": "looked at a record about you that could not be stored",
}
FIELD_WORDS = {
    "consents": "your consent choices", "consent_receipt": "a consent receipt",
    "consent_receipts": "your consent receipts", "consent_events": "your consent decisions",
    "events": "your activity", "predictions": "predictions about you", "identifiers": "your contact details",
    "campaign_assignment": "which version of a campaign you see", "recommendations": "your recommendations",
}


@dataclass(frozen=True)
class CustomerLocale:
    language: str
    zone: tzinfo
    zone_name: str

    def when(self, value: datetime | str | None, *, time: bool = True) -> str:
        """A date (and time) as the person reads it, in their zone; '' for none."""
        if not value:
            return ""
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if timezone.is_naive(value):
            value = value.replace(tzinfo=UTC)
        with translation.override(self.language):
            return formats.date_format(value.astimezone(self.zone), "DATETIME_FORMAT" if time else "DATE_FORMAT")


@cache
def _country_zones() -> dict[str, str]:
    """Country → its time zone, where it has one, or one the table calls the country's main
    one ("most of Germany", "Spain (mainland)"); other countries (the US) get none."""
    zones: dict[str, list[tuple[str, str]]] = {}
    if ZONE_TABLE.exists():
        for line in ZONE_TABLE.read_text().splitlines():
            if line and not line.startswith("#"):
                parts = line.split("\t")
                zones.setdefault(parts[0], []).append((parts[2], parts[3] if len(parts) > 3 else ""))
    chosen = {}
    for country, candidates in zones.items():
        main = [zone for zone, note in candidates if note.startswith("most of") or "(mainland)" in note]
        if len(candidates) == 1 or len(main) == 1:
            chosen[country] = candidates[0][0] if len(candidates) == 1 else main[0]
    return chosen


def _zone(name) -> zoneinfo.ZoneInfo | None:
    try:
        return zoneinfo.ZoneInfo(str(name)) if name else None
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        return None


def _value(attributes: dict, *names: str):
    for name in names:
        entry = attributes.get(name)
        value = entry.get("value") if isinstance(entry, dict) else entry
        if value:
            return value
    return None


def locale_from_attributes(attributes: dict, *, browser_language: str | None = None) -> CustomerLocale:
    """`attributes`: the unified view's ({name: {"value", ...}} or {name: value})."""
    language = str(_value(attributes, "language", "locale") or browser_language or "en").replace("_", "-")
    if not translation.check_for_language(language.split("-")[0]):
        language = "en"
    zone = _zone(_value(attributes, "timezone", "time_zone"))
    if zone is None:
        zone = _zone(_country_zones().get(str(_value(attributes, "country") or "").upper()))
    return CustomerLocale(language=language.lower(), zone=zone or UTC, zone_name=zone.key if zone else "UTC")


def customer_locale(*, profile_id: UUID, request=None) -> CustomerLocale:
    """The signed-in person's locale (their profile read for the person themselves)."""
    try:
        attributes = profile_unified_view(profile_id=profile_id).get("attributes", {})
    except Exception:  # noqa: BLE001 - an unreadable profile (being erased) reads in English, UTC
        attributes = {}
    browser = translation.get_language_from_request(request) if request is not None else None
    return locale_from_attributes(attributes, browser_language=browser)


# --- who looked at my data ----------------------------------------------------------------------------


def _staff_roles(ids: set[str]) -> dict[str, str]:
    users = get_user_model().objects.filter(pk__in=[i for i in ids if i.isdigit()]).prefetch_related("groups")
    roles = {}
    for user in users:
        groups = {g.name for g in user.groups.all()}
        role = COMPLIANCE if COMPLIANCE in groups else OPERATOR if OPERATOR in groups else None
        roles[str(user.pk)] = ROLE_WORDS.get(role, "A member of our staff")
    return roles


def who_words(actors: set[str]) -> dict[str, str]:
    """Audit actors as people read them: a staff member by role, an integration by its name."""
    staff = _staff_roles({a.removeprefix("staff:") for a in actors if a.startswith("staff:")})
    prefixes = [a.removeprefix("api_key:") for a in actors if a.startswith("api_key:")]
    keys = dict(ApiKey.objects.filter(prefix__in=prefixes).values_list("prefix", "name"))
    words = {}
    for actor in actors:
        if actor.startswith("staff:"):
            words[actor] = staff.get(actor.removeprefix("staff:"), "A member of our staff")
        elif actor.startswith("api_key:"):
            name = keys.get(actor.removeprefix("api_key:"))
            words[actor] = f"Our connected system “{name}”" if name else "One of our connected systems"
        else:
            words[actor] = ACTOR_WORDS.get(actor, "Our systems, automatically")
    return words


def _what(fields: list, purpose: str, kind: str) -> str:
    if kind == "operator_action":
        return WHY.get(purpose, "worked on your records")
    if purpose.startswith("dsr_") or len(fields) > 4:
        seen = "all your data"
    else:
        named = [FIELD_WORDS.get(f) or (f"your {f.split('.', 1)[1].replace('_', ' ')}" if "." in f
                                        else f"your {f.replace('_', ' ')}") for f in fields]
        seen = ", ".join(dict.fromkeys(named)) or "your data"
    return f"saw {seen} {WHY.get(purpose, 'for ' + purpose.replace('_', ' '))}"


def me_access_words(entries: list[dict], locale: CustomerLocale) -> list[dict]:
    """Access-log entries (access_log_as_dict's shape) as sentences: when, who, what and why."""
    names = who_words({e["actor"] for e in entries})
    return [{"at": e["at"], "when": locale.when(e["at"]), "who": names[e["actor"]],
             "you": e["actor"] == "data_subject", "what": _what(list(e.get("fields") or []), e["purpose"], e["kind"])}
            for e in entries]


def me_access_log(*, subject_ids: list, locale: CustomerLocale, limit: int = 100) -> list[dict]:
    """The person's access-log entries, newest first."""
    entries = access_log_for_subjects(subject_ids=subject_ids, limit=limit)
    return me_access_words([{"at": e.at, "actor": e.actor, "fields": e.fields, "purpose": e.purpose,
                             "kind": e.kind} for e in entries], locale)
