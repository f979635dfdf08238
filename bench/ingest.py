"""End-to-end ingestion throughput over HTTP, against a plain COPY of the same rows.

Starts Tessera on a fresh PostgreSQL database behind gunicorn on 127.0.0.1, as
production runs it (DEBUG=false; tasks in-process, no broker), and from this separate
client process pushes

* profile records through POST /api/v1/profiles/batch (each batch with an
  Idempotency-Key, as a careful integrator sends it), 20% of them naming people seen
  before, generated as bench/resolve.py does: encryption, blind indexes, resolution,
  merges, lineage and outbox rows all happen;
* Segment messages through POST /v1/batch (track and page calls of known and new
  users, some naming a user id and an anonymous id together),

with --clients parallel posters on keep-alive connections (one Segment user per 20
messages by default, --users to change it: a user's first message creates their
profile); request bodies are encoded before the clock starts. Prints records/s and
p50/p95 batch latency and, as the physical reference on this machine, the rate of one
plain COPY of the same rows into a bare table (no index, no encryption) and the ratio.
Also the CPU each item cost the gunicorn workers and this database's PostgreSQL
backends, which the machine's other load changes far less than the wall-clock rate.
`--profile` runs every gunicorn worker under cProfile and prints where the server's time
went.

The machine may be shared: the load average is printed; run it more than once. The
database starts empty: on a server with autovacuum off, nothing gathers table statistics
during the run, and the lookups of a batch become whole-table scans as the tables grow
(`--analyze-every 10` runs ANALYZE as autovacuum would).

    python bench/ingest.py [--profiles 100000] [--events 100000] [--batch 1000] [--users N]
                           [--clients 4] [--workers 4] [--threads 1] [--profile] [--analyze-every SECONDS]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from resolve import generate  # noqa: E402
from setup_django import ROOT, fresh_postgres, process_cpu_seconds  # noqa: E402

GUNICORN_PROFILE_HOOKS = '''
import cProfile, os
_profiler = None
def post_fork(server, worker):
    global _profiler
    _profiler = cProfile.Profile()
    _profiler.enable()
def worker_exit(server, worker):
    if _profiler is not None:
        _profiler.disable()
        _profiler.dump_stats(os.path.join({directory!r}, f"worker-{{os.getpid()}}.prof"))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=100_000, help="profile records to send (0: skip)")
    parser.add_argument("--events", type=int, default=100_000, help="Segment messages to send (0: skip)")
    parser.add_argument("--batch", type=int, default=1000, help="records or messages per request")
    parser.add_argument("--users", type=int, default=None,
                        help="distinct Segment users (default: one per 20 messages; each one's first message "
                             "creates their profile through resolution)")
    parser.add_argument("--clients", type=int, default=4, help="parallel posters")
    parser.add_argument("--workers", type=int, default=4,
                        help="gunicorn worker processes (default 4, as the Docker image runs: two per core)")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker")
    parser.add_argument("--profile", action="store_true", help="cProfile the gunicorn workers")
    parser.add_argument("--analyze-every", type=float, default=0, metavar="SECONDS",
                        help="ANALYZE the database this often during the run, as autovacuum would on a server "
                             "that has it on (its CPU counts as PostgreSQL's); 0: never")
    args = parser.parse_args()

    fresh_postgres("tessera_bench_ingest", production=True)
    from cdp.api.services.api_keys import api_key_create
    from cdp.services.sources import source_create

    write_keys = {}
    for key, trust in (("crm", 90), ("shop", 60), ("web", 30)):
        write_keys[key] = source_create(key=key, name=key, kind="first_party", trust=trust)[1]
    _, api_key = api_key_create(name="bench", scopes=["profiles:write", "events:write"])

    print(f"load average {os.getloadavg()[0]:.2f} at start ({os.cpu_count()} CPUs; other processes share them)")
    _autovacuum_note(args.analyze_every)
    profile_dir = tempfile.mkdtemp(prefix="tessera-bench-prof-") if args.profile else None
    port = _free_port()
    server = _start_gunicorn(port, args.workers, args.threads, profile_dir)
    try:
        _wait_ready(port)
        if args.profiles:
            bodies = _profile_bodies(args.profiles, args.batch)
            headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
            with CpuMeter(server.pid) as cpu, _Analyzer(args.analyze_every):
                rate, latencies, statuses = _push(port, "/api/v1/profiles/batch", bodies, headers, args.clients,
                                                  idempotent=True, count=args.profiles)
            copy_rate = _copy_reference("profiles", _profile_rows(args.profiles))
            _report("profiles", args.profiles, rate, latencies, copy_rate, statuses, cpu.used)
        if args.events:
            bodies, rows = _event_bodies(args.events, args.batch, args.users or max(1, args.events // 20))
            auth = base64.b64encode(f"{write_keys['web']}:".encode()).decode()
            headers = {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}
            with CpuMeter(server.pid) as cpu, _Analyzer(args.analyze_every):
                rate, latencies, statuses = _push(port, "/v1/batch", bodies, headers, args.clients,
                                                  idempotent=False, count=args.events)
            copy_rate = _copy_reference("events", rows)
            _report("events", args.events, rate, latencies, copy_rate, statuses, cpu.used)
            _report_events_stored(rows)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    if profile_dir:
        _print_profile(profile_dir)
        print(f"worker profiles kept in {profile_dir} (pstats files)")


# --- the server ---------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_gunicorn(port: int, workers: int, threads: int, profile_dir: str | None) -> subprocess.Popen:
    command = [str(Path(sys.executable).with_name("gunicorn")), "cdp.wsgi:application",
               "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
               "--worker-tmp-dir", "/dev/shm", "--no-control-socket", "--timeout", "300",
               "--graceful-timeout", "60", "--error-logfile", "-", "--log-level", "warning"]
    if profile_dir:
        config = Path(profile_dir) / "gunicorn_profile.py"
        config.write_text(GUNICORN_PROFILE_HOOKS.format(directory=profile_dir))
        command += ["--config", str(config)]
    # As the compose file's web service runs: sync workers with a persistent connection each.
    environment = {**os.environ, "DATABASE_POOL": os.environ.get("DATABASE_POOL", "false")}
    print(f"gunicorn: DATABASE_POOL={environment['DATABASE_POOL']}", file=sys.stderr)
    return subprocess.Popen(command, cwd=ROOT, env=environment)


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/healthz", headers={"X-Forwarded-Proto": "https"})
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("gunicorn did not answer /healthz within 60 s")


def _cpu_snapshot(server_pid: int) -> dict:
    """CPU seconds used so far by the gunicorn workers, this database's PostgreSQL backends
    and this client process: what the run costs, whatever else the machine is doing."""
    from django.db import connection

    workers = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" ", 1)
        except OSError:
            continue
        if int(rest.rsplit(")", 1)[1].split()[1]) == server_pid:  # its parent is the gunicorn master
            workers[int(pid)] = process_cpu_seconds(int(pid)) or 0.0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        backends = {pid: process_cpu_seconds(pid) or 0.0 for (pid,) in cursor.fetchall()}
    return {"workers": workers, "backends": backends, "client": time.process_time()}


class CpuMeter:
    """CPU used during a block by the server side and this client. Sampled every second,
    because a backend whose connection Django recycles (CONN_MAX_AGE) exits mid-run and
    takes its counter with it: its last sample still counts."""

    def __init__(self, server_pid: int):
        self.server_pid = server_pid
        self.used: dict = {}

    def __enter__(self):
        self.before = _cpu_snapshot(self.server_pid)
        self.seen = {"workers": dict(self.before["workers"]), "backends": dict(self.before["backends"])}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        from django.db import connection

        try:
            while not self.stop.wait(1.0):
                self._merge(_cpu_snapshot(self.server_pid))
        finally:
            connection.close()

    def _merge(self, snapshot: dict) -> None:
        for part in ("workers", "backends"):
            for pid, seconds in snapshot[part].items():
                self.seen[part][pid] = max(seconds, self.seen[part].get(pid, 0.0))

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        self.thread.join()
        after = _cpu_snapshot(self.server_pid)
        self._merge(after)
        self.used = {part: sum(seconds - self.before[part].get(pid, 0.0) for pid, seconds in self.seen[part].items())
                     for part in ("workers", "backends")}
        self.used["client"] = after["client"] - self.before["client"]


def _autovacuum_note(analyze_every: float) -> None:
    """Without statistics (a new database, and a server with autovacuum off) PostgreSQL
    plans the hot `= ANY(array)` lookups as whole-table scans, which grow with the tables."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        autovacuum = cursor.fetchone()[0]
    if autovacuum != "on" and not analyze_every:
        print(f"autovacuum is {autovacuum} on this server: no table statistics during the run "
              "(--analyze-every SECONDS stands in for it)")


class _Analyzer:
    """Every `seconds`, ANALYZE the tables of this database that autovacuum would: those
    with more rows changed since their last analyze than its default threshold (50 + 10%
    of the rows; PostgreSQL docs, "The Autovacuum Daemon"). From a connection of its own,
    a backend the CPU meter counts. Re-analyzing every table each time would bill the
    events run for the profiles run's tables."""

    CHANGED = "SELECT relname FROM pg_stat_user_tables WHERE n_mod_since_analyze > 50 + 0.1 * n_live_tup"

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __enter__(self):
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        if self.seconds:
            self.thread.start()
        return self

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as connection:
            while not self.stop.wait(self.seconds):
                for (table,) in connection.execute(self.CHANGED).fetchall():
                    connection.execute(f'ANALYZE "{table}"')

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        if self.seconds:
            self.thread.join()


# --- the client ---------------------------------------------------------------------------

def _push(port: int, path: str, bodies: list[bytes], headers: dict, clients: int, *, idempotent: bool,
          count: int) -> tuple[float, list[float], Counter]:
    """POST every body with `clients` parallel keep-alive connections; (items/s, latencies, statuses)."""
    work: queue.Queue = queue.Queue()
    for body in bodies:
        work.put(body)
    latencies: list[float] = []
    statuses: Counter = Counter()
    failures: list[str] = []
    lock = threading.Lock()

    def poster() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                return
            request_headers = {**headers, "X-Forwarded-Proto": "https"}  # as behind the TLS proxy
            if idempotent:
                request_headers["Idempotency-Key"] = str(uuid.uuid4())
            started = time.perf_counter()
            connection.request("POST", path, body=body, headers=request_headers)
            response = connection.getresponse()
            payload = response.read()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if response.status != 200:
                    failures.append(f"{response.status} {payload[:300]!r}")
                elif idempotent:
                    statuses.update(r["status"] for r in json.loads(payload)["results"])

    threads = [threading.Thread(target=poster) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, first: {failures[0]}")
    return count / elapsed, latencies, statuses


def _profile_bodies(count: int, batch: int) -> list[bytes]:
    """Batches of one source each, in generation order, as bench/resolve.py sends them."""
    pending: dict[str, list] = {}
    bodies = []
    for source, record in generate(count):
        records = pending.setdefault(source, [])
        records.append(record)
        if len(records) >= batch:
            bodies.append(json.dumps({"source": source, "records": records}).encode())
            pending[source] = []
    bodies += [json.dumps({"source": s, "records": r}).encode() for s, r in pending.items() if r]
    return bodies


def _profile_rows(count: int) -> list[tuple]:
    return [(record["external_id"], source, record["identifiers"].get("email"), record["identifiers"].get("phone"),
             record["identifiers"].get("crm_id"), record["identifiers"].get("anonymous_id"),
             json.dumps(record["attributes"])) for source, record in generate(count)]


def _event_bodies(count: int, batch: int, users: int, seed: int = 11) -> tuple[list[bytes], list[tuple]]:
    """Segment track/page messages of `users` users; the bare-table rows they make."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    messages, rows = [], []
    for n in range(count):
        user = rng.randrange(users)
        message = {"messageId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                   "timestamp": (start + timedelta(seconds=n)).isoformat()}
        style = rng.random()
        if style < 0.85:
            message["userId"] = f"u{user}"
        elif style < 0.95:
            message["anonymousId"] = f"anon-{user}"
        else:
            message["userId"], message["anonymousId"] = f"u{user}", f"anon-{user}"  # stitches the two
        kind = rng.random()
        product = f"sku-{rng.randrange(2000)}"
        price = round(rng.uniform(2, 200), 2)
        if kind < 0.60:
            message.update(type="track", event="Product Viewed", properties={"product_id": product, "price": price})
            rows.append((message["messageId"], "view", "", product, None, price, message["timestamp"]))
        elif kind < 0.75:
            message.update(type="track", event="Product Added",
                           properties={"product_id": product, "price": price, "quantity": 1})
            rows.append((message["messageId"], "add_to_cart", "", product, 1, price, message["timestamp"]))
        elif kind < 0.80:
            second = f"sku-{rng.randrange(2000)}"
            message.update(type="track", event="Order Completed", properties={"order_id": f"o{n}", "products": [
                {"product_id": product, "price": price, "quantity": 1},
                {"product_id": second, "price": 10.0, "quantity": 2}]})
            rows.append((f"{message['messageId']}:0", "purchase", "", product, 1, price, message["timestamp"]))
            rows.append((f"{message['messageId']}:1", "purchase", "", second, 2, 10.0, message["timestamp"]))
        else:
            message.update(type="page", name="Home", properties={"path": "/"})
            rows.append((message["messageId"], "custom", "Page Viewed", None, None, None, message["timestamp"]))
        messages.append(message)
    bodies = [json.dumps({"batch": messages[i:i + batch], "sentAt": datetime.now(UTC).isoformat()}).encode()
              for i in range(0, len(messages), batch)]
    return bodies, rows


# --- the physical reference -----------------------------------------------------------------

_BARE_TABLES = {
    "profiles": "(external_id text, source text, email text, phone text, crm_id text, anonymous_id text, "
                "attributes jsonb)",
    "events": "(message_id text, type text, name text, item_id text, quantity int, price numeric, "
              "occurred_at timestamptz)",
}


def _copy_reference(name: str, rows: list[tuple]) -> float:
    """Rows/s of one COPY of these rows into a bare table (then dropped), committed."""
    import psycopg

    table = f"bench_copy_{name}"
    with psycopg.connect(os.environ["DATABASE_URL"]) as connection:
        connection.execute(f"DROP TABLE IF EXISTS {table}")
        connection.execute(f"CREATE TABLE {table} {_BARE_TABLES[name]}")
        connection.commit()
        started = time.perf_counter()
        with connection.cursor() as cursor, cursor.copy(f"COPY {table} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        connection.commit()
        elapsed = time.perf_counter() - started
        connection.execute(f"DROP TABLE {table}")
        connection.commit()
    return len(rows) / elapsed


def _report(name: str, count: int, rate: float, latencies: list[float], copy_rate: float, statuses: Counter,
            cpu: dict) -> None:
    latencies = sorted(latencies)
    p50 = latencies[len(latencies) // 2]
    p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
    print(f"{name:9s} {count:>9,} sent  {rate:>8,.0f}/s   batch latency p50 {p50 * 1000:,.0f} ms "
          f"p95 {p95 * 1000:,.0f} ms   ({len(latencies)} requests)")
    print(f"{'':9s} plain COPY of the same rows into a bare table: {copy_rate:>9,.0f} rows/s;"
          f" endpoint/COPY = {rate / copy_rate:.3f}")
    if statuses:
        print(f"{'':9s} statuses {dict(sorted(statuses.items()))}")
    per = {part: seconds / count * 1e6 for part, seconds in cpu.items()}
    total = per["workers"] + per["backends"]
    print(f"{'':9s} CPU per item: {per['workers']:,.0f} µs gunicorn + {per['backends']:,.0f} µs PostgreSQL = "
          f"{total:,.0f} µs (client {per['client']:,.0f} µs): the server side alone, on {os.cpu_count()} otherwise "
          f"idle CPUs, could do at most {os.cpu_count() / total * 1e6:,.0f}/s")


def _report_events_stored(rows: list[tuple]) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM cdp_event")
        stored = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM cdp_profile")
        profiles = cursor.fetchone()[0]
    print(f"{'':9s} event rows stored {stored:,} of {len(rows):,} expected; profiles in the database {profiles:,}")


def _print_profile(directory: str) -> None:
    import pstats

    files = sorted(Path(directory).glob("worker-*.prof"))
    if not files:
        print("no worker profiles were written")
        return
    stats = pstats.Stats(*map(str, files), stream=sys.stdout)
    print(f"\n--- server profile: {len(files)} gunicorn workers, own time ---")
    stats.sort_stats("tottime").print_stats(35)
    print("--- server profile: cumulative ---")
    stats.sort_stats("cumulative").print_stats(60)


if __name__ == "__main__":
    main()
