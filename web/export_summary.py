"""The access export as a person reads it: the page printed beside the JSON download.

Built from the same export document (consent.services.dsr's, unsealed for the person), so it
shows nothing the JSON does not hold: items by their catalogue names, dates in the person's
language and time zone (web.customer), decisions in the ledger's words (declined, withdrawn,
expired, re-consent required), segments by what they mean, and the controller's contact
details as configured. No internal codes (SKUs, RFM scores, epoch timestamps, raw keys).
"""

from __future__ import annotations

from cdp.selectors import item_titles
from consent.selectors import controller_details, notice_text
from personalization.segmentation import ARCHETYPE_DESCRIPTIONS
from web.customer import CustomerLocale, locale_from_attributes, me_access_words
from web.selectors import source_names

IDENTIFIER_WORDS = {"email": "E-mail address", "phone": "Phone number", "crm_id": "Customer number",
                    "user_id": "Account id", "anonymous_id": "Device or browser id"}
ACTION_WORDS = {"view": "Viewed", "add_to_cart": "Added to basket", "purchase": "Bought", "rating": "Rated",
                "custom": "Did"}
DECISION_WORDS = {"granted": "Allowed", "declined": "Declined", "withdrawn": "Withdrawn",
                  "expired": "Expired", "reconsent_required": "Re-consent required (the notice changed)",
                  "not_recorded": "Never asked", "legitimate_interest": "On unless you object",
                  "contract": "On (needed to serve you)"}
CHANNEL_WORDS = {"preference_center": "on this page", "api": "through one of our systems",
                 "crm_sync": "from our customer records", "cmp": "in a cookie banner",
                 "gpc": "by your browser's Global Privacy Control signal", "operator": "by our staff",
                 "import": "imported from our earlier records", "merge": "when two of your profiles were combined"}
REQUEST_WORDS = {"access": "A copy of your data", "portability": "Your data to take elsewhere",
                 "erasure": "Erase your data", "rectification": "Correct your data"}


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _plain(value) -> str:
    if isinstance(value, dict):
        return ", ".join(str(v) for v in value.values() if v not in (None, ""))
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    return "" if value is None else str(value)


def export_summary(document: dict, *, browser_language: str | None = None) -> dict:
    """The template's context for one export document."""
    data = document.get("data", {})
    view = (data.get("profile") or {}).get("unified_view") or {}
    attributes = view.get("attributes") or {}
    locale = locale_from_attributes(attributes, browser_language=browser_language)
    language = locale.language
    purposes = {s["purpose"] for s in data.get("consents", [])} | {
        e["purpose"] for e in [*data.get("consent_history", []), *data.get("served_notices", [])]}
    titles = {p: notice_text(purpose=p, language=language)["title"] for p in purposes}
    sources = source_names()
    return {
        "locale": locale, "generated": locale.when(document.get("generated_at")),
        "controller": controller_details(),
        "identifiers": [{"kind": IDENTIFIER_WORDS.get(kind, _label(kind)), "value": value}
                        for kind, values in (view.get("identifiers") or {}).items() for value in values],
        "attributes": [{"name": _label(name), "value": _plain(a.get("value")),
                        "source": sources.get(a.get("source"), a.get("source") or ""), "since": locale.when(
                            a.get("observed_at"), time=False)} for name, a in attributes.items()],
        "choices": _choices(data, titles),
        "history": _history(data, titles, locale),
        "activity": _activity(data.get("events", []), locale, sources),
        "segments": _segments(data.get("personalization", {}).get("segments", []), locale),
        "recommendations": [{"title": r.get("title"), "why": (r.get("explanation") or {}).get("text", "")}
                            for r in data.get("personalization", {}).get("recommendations", [])],
        "predictions": [(p.get("explanation") or {}).get("text", "")
                        for p in data.get("personalization", {}).get("predictions", [])[:1]],
        "requests": [{"what": REQUEST_WORDS.get(r["type"], _label(r["type"])), "status": _label(r["status"]),
                      "asked": locale.when(r.get("received_at")), "done": locale.when(r.get("completed_at"))}
                     for r in data.get("data_subject_requests", [])],
        "notices": [{"title": titles.get(n["purpose"], _label(n["purpose"])), "version": n["notice_version"],
                     "when": locale.when(n.get("served_at"))}
                    for n in data.get("served_notices", [])],
        "accesses": me_access_words(data.get("access_log", []), locale),
    }


def _choices(data: dict, titles: dict) -> list[dict]:
    last = {}
    for event in data.get("consent_history", []):
        last[event["purpose"]] = event.get("decision")
    rows = []
    for state in data.get("consents", []):
        status, basis = state.get("status"), state.get("basis")
        word = (basis if basis in ("contract", "legitimate_interest") and state.get("granted")
                else last.get(state["purpose"]) if status == "withdrawn" else status)
        rows.append({"purpose": titles.get(state["purpose"], _label(state["purpose"])),
                     "now": DECISION_WORDS.get(word, _label(str(word))), "allowed": bool(state.get("granted"))})
    return rows


def _history(data: dict, titles: dict, locale: CustomerLocale) -> list[dict]:
    lapsed = {r["consentReceiptID"]: r.get("tessera", {}).get("statusNow") for r in data.get("consent_receipts", [])}
    rows = []
    for event in sorted(data.get("consent_history", []), key=lambda e: e.get("occurred_at") or "", reverse=True):
        now = lapsed.get(event["id"])
        rows.append({"when": locale.when(event.get("occurred_at")),
                     "purpose": titles.get(event["purpose"], _label(event["purpose"])),
                     "decision": DECISION_WORDS.get(event.get("decision"), _label(str(event.get("decision")))),
                     "now": DECISION_WORDS.get(now) if now else "", "notice": event.get("notice_version"),
                     "how": CHANNEL_WORDS.get(event.get("channel"), _label(str(event.get("channel"))))})
    return rows


def _activity(events: list[dict], locale: CustomerLocale, sources: dict) -> list[dict]:
    names = item_titles(e["item_id"] for e in events if e.get("item_id") and not e.get("item_title"))
    rows = []
    for event in sorted(events, key=lambda e: e.get("occurred_at") or "", reverse=True):
        item = event.get("item_id")
        what = event.get("item_title") or names.get(item) or (
            "an item no longer in our catalogue" if item else event.get("name") or "")
        rows.append({"when": locale.when(event.get("occurred_at")),
                     "action": ACTION_WORDS.get(event.get("type"), _label(str(event.get("type")))),
                     "item": what, "quantity": event.get("quantity"), "price": event.get("price"),
                     "rating": event.get("rating"), "where": sources.get(event.get("source"), "")})
    return rows


def _segments(memberships: list[dict], locale: CustomerLocale) -> list[dict]:
    seen, rows = set(), []
    for membership in memberships:  # newest first; the previous grouping is kept for comparison only
        name = membership.get("segment") or ""
        if name in seen:
            continue
        seen.add(name)
        rows.append({"name": name, "means": ARCHETYPE_DESCRIPTIONS.get(name, "customers who shop like you"),
                     "when": locale.when(membership.get("segmented_at"), time=False)})
    return rows
