"""Consent on PostgreSQL: ledger appends with concurrent writers, policy checks, verification.

1. appends/s through `consent_set` (ledger event + head + state + outbox, one transaction
   each) with 1 and with 2 concurrent writers, each writer on its own subjects (other
   apps' withdrawal handlers switched off: this measures the ledger), and through
   `consents_record_many` in batches of 500 decisions (as `POST /consents/batch` records);
2. `consent.policy.allowed()` over 100,000 profiles (half of them granted);
3. `ledger_verify()` over 1,000,000 events (200,000 chains of 5), loaded with COPY.

    python bench/consent.py [--appends 2000] [--profiles 100000] [--events 1000000]
"""

from __future__ import annotations

import argparse
import io
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from setup_django import fresh_postgres, peak_rss_mb  # noqa: E402

PURPOSES = ("analytics", "personalization", "marketing", "enrichment", "sale_sharing")


def appends(total: int, writers: int) -> float:
    from django.db import connection

    from consent.services import consent_set

    per_writer = total // writers
    subjects = [[uuid.uuid4() for _ in range(max(1, per_writer // 5))] for _ in range(writers)]
    errors: list[BaseException] = []

    def work(mine: list[uuid.UUID]) -> None:
        try:
            for n in range(per_writer):
                consent_set(profile_id=mine[n % len(mine)], purpose=PURPOSES[(n // len(mine)) % 5],
                            granted=bool(n % 2), channel="api", actor="bench")
        except BaseException as error:  # noqa: BLE001 (reported below)
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(subjects[i],)) for i in range(writers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return per_writer * writers / elapsed


def batched_appends(total: int, batch: int = 500) -> float:
    from consent.services import ConsentChange, consents_record_many

    people = [uuid.uuid4() for _ in range(total)]
    started = time.perf_counter()
    for start in range(0, total, batch):
        consents_record_many([(pid, [ConsentChange(PURPOSES[n % 5], bool(n % 2))])
                              for n, pid in enumerate(people[start:start + batch], start=start)],
                             channel="api", actor="bench")
    return total / (time.perf_counter() - started)


def policy_check(count: int) -> tuple[float, int]:
    from django.utils import timezone

    from consent import policy
    from consent.models import ConsentState

    ids = [uuid.uuid4() for _ in range(count)]
    now = timezone.now()
    ConsentState.objects.bulk_create(
        [ConsentState(profile_id=pid, purpose="analytics", granted=n % 2 == 0, notice_version=1, updated_at=now)
         for n, pid in enumerate(ids)], batch_size=10_000)
    policy.allowed(ids[:1000], "analytics")  # warm-up
    started = time.perf_counter()
    allowed = policy.allowed(ids, "analytics")
    return time.perf_counter() - started, len(allowed)


def load_ledger(events: int, per_chain: int = 5) -> float:
    """Write valid chains straight into the tables with COPY (links computed here)."""
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from consent.ledger import LINKED_FIELDS, event_link, genesis_link, head_mac

    key = settings.TESSERA_LEDGER_KEY
    started = time.perf_counter()
    now = timezone.now()
    event_buffer, head_buffer, state_buffer = io.StringIO(), io.StringIO(), io.StringIO()
    for _ in range(events // per_chain):
        pid = uuid.uuid4()
        link = genesis_link(pid, key=key)
        last: dict[str, tuple] = {}
        for seq in range(1, per_chain + 1):
            values = {"id": uuid.uuid4(), "profile_id": pid, "seq": seq, "purpose": PURPOSES[seq % 5],
                      "granted": seq % 2 == 1, "notice_version": 1, "basis": "consent", "channel": "cmp",
                      "actor": "bench", "source": "", "jurisdiction": "", "language": "en", "ip_hash": "",
                      "user_agent_hash": "", "occurred_at": now, "recorded_at": now, "evidence_note": ""}
            link = event_link(tuple(values[f] for f in LINKED_FIELDS), link, key=key)
            event_buffer.write("\t".join(str(values[f]) if f != "granted" else ("t" if values[f] else "f")
                                         for f in LINKED_FIELDS) + f"\t{link}\n")
            last[values["purpose"]] = (values["id"], values["granted"])
        head_buffer.write(f"{pid}\t{per_chain}\t{link}\t*\t0\t{head_mac(pid, per_chain, link, key=key)}\t{now}\n")
        for purpose, (event_id, granted) in last.items():
            state_buffer.write(f"{pid}\t{purpose}\t{'t' if granted else 'f'}\t1\t{event_id}\t{now}\n")
    columns = ", ".join((*LINKED_FIELDS, "link"))
    with connection.cursor() as cursor:
        copy = cursor.cursor.copy
        for table, cols, buffer in (
                ("consent_consentevent", columns, event_buffer),
                ("consent_chainhead", "profile_id, length, last_link, jurisdiction, jurisdiction_changes, mac, "
                                      "updated_at", head_buffer),
                ("consent_consentstate", "profile_id, purpose, granted, notice_version, event_id, updated_at",
                 state_buffer)):
            with copy(f"COPY {table} ({cols}) FROM STDIN") as sink:
                sink.write(buffer.getvalue())
        cursor.execute("ANALYZE consent_consentevent")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    fresh_postgres("tessera_bench_consent")
    from consent import registry

    # The ledger alone: other apps' withdrawal/grant handlers (deleting recommendations...)
    # cost what their own deletes cost, which is not what this measures.
    for hook in (registry.WITHDRAWAL, registry.GRANT):
        registry._HANDLERS[hook].clear()
    from cdp.core import outbox

    outbox._listeners.clear()  # no in-process webhook relay after each commit either

    from consent.ledger import ledger_verify
    from consent.models import ChainHead, ConsentEvent, ConsentState

    one = appends(args.appends, 1)
    two = appends(args.appends, 2)
    print(f"consent appends, 1 writer      {one:>10,.0f} /s")
    print(f"consent appends, 2 writers     {two:>10,.0f} /s")
    print(f"consent appends, batches of 500 {batched_appends(args.appends):>9,.0f} /s")
    ConsentState.objects.all().delete()
    seconds, allowed = policy_check(args.profiles)
    print(f"allowed() for {args.profiles:,} profiles  {seconds * 1000:>8,.0f} ms  ({allowed:,} allowed)")
    ConsentState.objects.all().delete()
    ChainHead.objects.all().delete()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE consent_consentevent")  # the trigger refuses DELETE, not TRUNCATE
    load = load_ledger(args.events)
    print(f"loaded {ConsentEvent.objects.count():,} events in {load:.1f} s")
    report = ledger_verify()
    assert report.intact, report.finding
    print(f"ledger_verify over {report.events:,} events   {report.seconds:>8.1f} s  "
          f"({report.events / report.seconds:,.0f} events/s, {report.subjects:,} chains, {report.states:,} states)")
    print(f"peak RSS {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
