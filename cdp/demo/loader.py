"""Loading the generated demo data set through the ordinary ingestion services.

Re-running with the same seed changes nothing: sources are reused, records come back
`unchanged`, events `duplicate` (same message ids) and consent states already match.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model

from cdp.demo.generator import generate_demo
from cdp.models import Source
from cdp.selectors import profile_ids_by_identifiers
from cdp.services.events import events_ingest
from cdp.services.items import items_upsert
from cdp.services.resolution import profiles_ingest
from cdp.services.sources import source_create
from cdp.staff import COMPLIANCE, OPERATOR, staff_create
from consent.services import ConsentChange, consents_record_many

BATCH = 1000
CONSENT_BATCH = 500
# Development-only log-ins, printed by `demo_info`; never created when DEBUG is false.
DEMO_STAFF = [
    {"username": "compliance", "password": "demo-compliance-pass", "role": COMPLIANCE},
    {"username": "operator", "password": "demo-operator-pass", "role": OPERATOR},
]


@dataclass
class DemoReport:
    sources_created: int = 0
    items: dict = field(default_factory=dict)
    records: dict = field(default_factory=dict)
    events: dict = field(default_factory=dict)
    consents_changed: int = 0
    staff_created: int = 0

    def count(self, bucket: dict, results) -> None:
        for result in results:
            bucket[result.status] = bucket.get(result.status, 0) + 1


def demo_load(*, customers: int = 3000, seed: int = 42,
              on_progress: Callable[[int], None] | None = None) -> DemoReport:
    data = generate_demo(customers=customers, seed=seed)
    report = DemoReport()
    sources = {spec["key"]: _source(spec, report) for spec in data.sources}
    _step(on_progress)
    for start in range(0, len(data.items), BATCH):
        report.count(report.items, items_upsert(items=data.items[start:start + BATCH]))
    _step(on_progress)
    # First-party sources first: third-party records are then matched, not held.
    ordered = sorted(data.records, key=lambda key: sources[key].is_third_party)
    for key in ordered:
        records = data.records[key]
        for start in range(0, len(records), BATCH):
            report.count(report.records, profiles_ingest(source=sources[key], records=records[start:start + BATCH]))
        _step(on_progress)
    by_source: dict[str, list[dict]] = {}
    for event in data.events:
        by_source.setdefault(event["source"], []).append({k: v for k, v in event.items() if k != "source"})
    for key, events in by_source.items():
        for start in range(0, len(events), 5 * BATCH):
            report.count(report.events, events_ingest(source=sources[key], events=events[start:start + 5 * BATCH]))
    _step(on_progress)
    report.consents_changed = _apply_consents(data.consents)
    _step(on_progress)
    if settings.DEBUG:
        report.staff_created = _demo_staff()
    return report


DEMO_STEPS = 7


def _step(on_progress) -> None:
    if on_progress:
        on_progress(1)


def demo_write_key(source_key: str) -> str:
    """The fixed Segment write key of a demo source in development (printed by demo_info,
    like the demo staff log-ins); demo sources made with DEBUG off get random keys."""
    return f"wk_demo_{source_key.replace('-', '_')}_write_key"


def _source(spec: dict, report: DemoReport) -> Source:
    source = Source.objects.filter(key=spec["key"]).first()
    if source is None:
        source, _ = source_create(key=spec["key"], name=spec["name"], kind=spec["kind"], trust=spec["trust"],
                                  write_key=demo_write_key(spec["key"]) if settings.DEBUG else None)
        report.sources_created += 1
    return source


def _apply_consents(consents: list[dict]) -> int:
    """Each person's latest choice per purpose, recorded in the ledger as an import.

    Only the latest choice is replayed so that a rerun records nothing new.
    """
    latest: dict[tuple, dict] = {}
    for change in sorted(consents, key=lambda c: c["occurred_at"]):
        identifier = tuple(sorted(change["profile"].items()))
        latest[(identifier, change["purpose"])] = change
    owners = profile_ids_by_identifiers([identifier[0] for identifier, _ in latest])
    people: dict = {}
    for (identifier, purpose), change in latest.items():
        profile_id = owners.get(identifier[0])
        if profile_id is not None:
            people.setdefault(profile_id, []).append(ConsentChange(purpose, change["granted"]))
    # In batches of people, one transaction each (a transaction a decision was most of the
    # load's time); a decision that changes nothing is skipped, so a rerun records nothing.
    changed = 0
    batch = list(people.items())
    for start in range(0, len(batch), CONSENT_BATCH):
        results = consents_record_many(batch[start:start + CONSENT_BATCH], channel="import", actor="load_demo")
        changed += sum(1 for person in results for result in person if result.status == "recorded")
    return changed


def _demo_staff() -> int:
    created = 0
    users = get_user_model().objects
    for staff in DEMO_STAFF:
        if not users.filter(username=staff["username"]).exists():
            staff_create(**staff)
            created += 1
    return created
