"""Loading user-supplied data sets (MovieLens, UCI Online Retail) through the ordinary
ingestion services, in batches, so imports obey resolution, suppression and dedup.

Rows stream from the parsers in cdp.importers; nothing holds a whole file in memory.
Events carry a message id derived from the file position, so a re-run stores nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from cdp.importers import movielens, purchases, transactions
from cdp.importers.common import ImportFormatError, ImportSummary, Rejected
from cdp.models import Source
from cdp.selectors import profile_ids_by_identifiers
from cdp.services.events import events_ingest
from cdp.services.items import items_upsert
from cdp.services.resolution import profiles_ingest
from cdp.services.sources import source_create
from consent.policy import PURPOSES
from consent.services import Channel, ConsentChange, Evidence, consents_record_many

EVENT_BATCH = 5000
PROFILE_BATCH = 1000
UNSPECIFIED_ITEM = "purchases-unspecified"

MAX_EVIDENCE = 200  # the ledger event's evidence note holds 200 characters


@dataclass(frozen=True)
class ConsentBasis:
    """What the person running an import states: these people granted these purposes, and
    the evidence for it (where and how it was collected). Recorded in the consent ledger
    (channel `import`, actor `import`, the evidence in the event's evidence note, which the
    chain's HMAC covers)."""

    purposes: tuple[str, ...]
    evidence: str


def consent_basis_check(purposes: str, evidence: str | None) -> ConsentBasis:
    """`--consent a,b --evidence TEXT` checked before anything is imported."""
    wanted = tuple(dict.fromkeys(p.strip() for p in purposes.split(",") if p.strip()))
    unknown = [p for p in wanted if p not in PURPOSES]
    if not wanted or unknown:
        raise ImportFormatError(f"--consent takes purposes among {', '.join(PURPOSES)}, separated by commas.")
    evidence = (evidence or "").strip()
    if not evidence or len(evidence) > MAX_EVIDENCE or not evidence.isprintable():
        raise ImportFormatError(f"--consent needs --evidence: where and how the consent was collected, in at most "
                                f"{MAX_EVIDENCE} printable characters (no personal data).")
    return ConsentBasis(wanted, evidence)


@dataclass
class ImportReport:
    source: str
    summary: ImportSummary = field(default_factory=ImportSummary)
    profiles: dict = field(default_factory=dict)   # status -> count
    events: dict = field(default_factory=dict)
    items: dict = field(default_factory=dict)
    consents_recorded: int = 0

    def count(self, bucket: dict, results) -> None:
        for result in results:
            bucket[result.status] = bucket.get(result.status, 0) + 1

    def as_dict(self) -> dict:
        return {
            "source": self.source,
            "rows_loaded": self.summary.loaded_total, "rows_rejected": self.summary.rejected_total,
            "rejected_by_reason": dict(sorted(self.summary.rejected.items())),
            "profiles": self.profiles, "events": self.events, "items": self.items,
            "consents_recorded": self.consents_recorded,
        }


def source_get_or_create(key: str, *, name: str) -> Source:
    source = Source.objects.filter(key=key).first()
    if source is None:
        source, _ = source_create(key=key, name=name, kind="first_party", trust=50)
    return source


class _EventSink:
    """Buffers people and events, flushing people before the events that name them."""

    def __init__(self, source: Source, report: ImportReport):
        self.source, self.report = source, report
        self.known_people: set[str] = set()
        self.people: list[dict] = []
        self.events: list[dict] = []

    def person(self, user_id: str, attributes: dict | None = None) -> None:
        if user_id not in self.known_people:
            self.known_people.add(user_id)
            self.people.append({"external_id": f"user-{user_id}", "identifiers": {"user_id": user_id},
                                "attributes": attributes or {}})
            if len(self.people) >= PROFILE_BATCH:
                self.flush_people()

    def event(self, event: dict) -> None:
        self.events.append(event)
        if len(self.events) >= EVENT_BATCH:
            self.flush()

    def flush_people(self) -> None:
        if self.people:
            self.report.count(self.report.profiles, profiles_ingest(source=self.source, records=self.people))
            self.people = []

    def flush(self) -> None:
        self.flush_people()
        if self.events:
            self.report.count(self.report.events, events_ingest(source=self.source, events=self.events))
            self.events = []


def movielens_import(*, path: str, source_key: str = "movielens", consent: ConsentBasis | None = None,
                     on_progress: Callable[[int], None] | None = None) -> ImportReport:
    """Items from u.item/movies.csv; each user a profile (user_id); ratings as events."""
    movielens.detect_layout(path)  # fails early, before anything is stored
    source = source_get_or_create(source_key, name="MovieLens")
    report = ImportReport(source=source.key)
    items = []
    for row in report.summary.track(movielens.read_items(path)):
        if not isinstance(row, Rejected):
            items.append({"id": f"ml-{row.id}", "title": row.title, "category": row.category,
                          "description": row.description, "attributes": row.attributes})
    for start in range(0, len(items), 1000):
        report.count(report.items, items_upsert(items=items[start:start + 1000]))
    sink = _EventSink(source, report)
    for row in _progress(report.summary.track(movielens.read_ratings(path)), on_progress):
        if isinstance(row, Rejected):
            continue
        sink.person(row.user_id)
        sink.event({"profile": {"user_id": row.user_id}, "type": "rating", "item_id": f"ml-{row.item_id}",
                    "rating": row.rating, "occurred_at": row.occurred_at.isoformat(),
                    "message_id": f"ml:{row.user_id}:{row.item_id}"})
    sink.flush()
    report.consents_recorded = imported_consents_record(source, sink.known_people, consent)
    return report


def transactions_import(*, path: str, source_key: str = "retail", timezone: str = "Europe/London",
                        consent: ConsentBasis | None = None,
                        on_progress: Callable[[int], None] | None = None) -> ImportReport:
    """UCI Online Retail: each customer a profile (user_id, country); each line a purchase."""
    rows = transactions.read_transactions(path, timezone=timezone)  # validates files and zone now
    source = source_get_or_create(source_key, name="Online retail")
    report = ImportReport(source=source.key)
    sink = _EventSink(source, report)
    seen_items: dict[str, dict] = {}
    pending_items: list[dict] = []
    line = 0
    for row in _progress(report.summary.track(rows), on_progress):
        line += 1
        if isinstance(row, Rejected):
            continue
        if row.stock_code not in seen_items:
            item = {"id": f"retail-{row.stock_code}", "title": (row.description or row.stock_code)[:300],
                    "category": "retail", "description": row.description,
                    "attributes": {"unit_price": str(row.unit_price)}}
            seen_items[row.stock_code] = item
            pending_items.append(item)
            if len(pending_items) >= 1000:
                report.count(report.items, items_upsert(items=pending_items))
                pending_items = []
        sink.person(row.customer_id, {"country": row.country})
        sink.event({"profile": {"user_id": row.customer_id}, "type": "purchase",
                    "item_id": f"retail-{row.stock_code}", "quantity": row.quantity,
                    "price": str(row.unit_price), "occurred_at": row.occurred_at.isoformat(),
                    "message_id": f"retail:{row.invoice}:{row.stock_code}:{line}"})
    if pending_items:
        report.count(report.items, items_upsert(items=pending_items))
    sink.flush()
    report.consents_recorded = imported_consents_record(source, sink.known_people, consent)
    return report


def purchases_import(*, path: str, source_key: str = "purchases", consent: ConsentBasis | None = None,
                     on_progress: Callable[[int], None] | None = None) -> ImportReport:
    """The `purchases` shape: each customer a profile (user_id); each line a purchase whose
    price is the line's amount over its quantity (to the cent, as events store prices). The
    shape names no product: purchases need an item id, so each names UNSPECIFIED_ITEM (never
    in the catalogue, so never recommended)."""
    rows = purchases.read_purchases(path)  # validates the path now
    source = source_get_or_create(source_key, name="Purchases")
    report = ImportReport(source=source.key)
    sink = _EventSink(source, report)
    for line, row in enumerate(_progress(report.summary.track(rows), on_progress), start=1):
        if isinstance(row, Rejected):
            continue
        price = (row.amount / row.quantity).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        sink.person(row.customer_id)
        sink.event({"profile": {"user_id": row.customer_id}, "type": "purchase", "item_id": UNSPECIFIED_ITEM,
                    "quantity": row.quantity,
                    "price": str(price), "occurred_at": row.occurred_at.isoformat(),
                    "message_id": f"purchases:{row.customer_id}:{row.occurred_at.date().isoformat()}:{line}"})
    sink.flush()
    report.consents_recorded = imported_consents_record(source, sink.known_people, consent)
    return report


def imported_consents_record(source: Source, user_ids: set[str], consent: ConsentBasis | None) -> int:
    """The stated consent of the imported people, in the ledger; returns the decisions
    recorded (a re-run, or a person who decided since, records nothing new)."""
    if consent is None or not user_ids:
        return 0
    recorded = 0
    ids = sorted(user_ids)
    changes = [ConsentChange(purpose, True) for purpose in consent.purposes]
    for start in range(0, len(ids), PROFILE_BATCH):
        owners = profile_ids_by_identifiers([("user_id", uid) for uid in ids[start:start + PROFILE_BATCH]],
                                            source_key=source.key)
        people = [(pid, changes) for pid in dict.fromkeys(owners.values())]
        results = consents_record_many(people, channel=Channel.IMPORT, actor="import", source=source.key,
                                       evidence=Evidence(note=consent.evidence))
        recorded += sum(1 for person in results for result in person if result.status == "recorded")
    return recorded


def _progress(rows: Iterable, on_progress):
    for row in rows:
        if on_progress:
            on_progress(1)
        yield row
