"""The fault suite's machinery, shared with bench/faults.py: private services, the
product under gunicorn, and the outage scenarios with their figures.

Everything runs on private ports in a temporary directory: a Redis (`redis-server`), a
PostgreSQL cluster (`initdb`/`pg_ctl`, as the `postgres` user when run as root, which
initdb refuses), gunicorn sync workers in the production shape (DEBUG off) and, where a
scenario needs one, a Celery worker with beat. Each scenario returns a `Report`:
requests accepted during the outage, answers by status code, records lost and
duplicated (must be 0) and the time from the service's return to the first success.
"""

from __future__ import annotations

import base64
import glob
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_SOURCES = ("pgr", "rds")


class Unavailable(Exception):
    """A binary the suite needs is not on this machine."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, seconds: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} within {seconds:g} s")


def _key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


# --- services ---------------------------------------------------------------------------------


class RedisServer:
    def __init__(self, directory: Path):
        binary = shutil.which("redis-server")
        if binary is None:
            raise Unavailable("redis-server is not installed")
        self.binary, self.directory, self.port = binary, directory, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._answers, 10, "redis-server did not answer")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # as a crash or a lost host would: nothing saved
            self.process.wait(timeout=10)


class PostgresCluster:
    """A throwaway cluster: trust authentication, no fsync, on a private port."""

    def __init__(self, directory: Path):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            raise Unavailable("PostgreSQL server binaries (/usr/lib/postgresql/*/bin) are not installed")
        self.bin = Path(bins[-1]).parent
        self.directory, self.port = directory, free_port()
        self.data = directory / "pgdata"
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(directory, "postgres")
        self._run(["initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])

    def _run(self, command: list[str], check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_user, str(self.bin / command[0]), *command[1:]], check=check,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self.directory)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.directory} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60")
        self._run(["pg_ctl", "-D", str(self.data), "-l", str(self.directory / "postgres.log"), "-w", "-t", "60",
                   "-o", options, "start"])

    def stop(self) -> None:
        self._run(["pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop"], check=False)

    def psql(self, sql: str, params: tuple = (), database: str = "tessera") -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as connection:
            cursor = connection.execute(sql, params)
            return cursor.fetchall() if cursor.description else []


class Product:
    """The configured product on the private services: commands, gunicorn, a worker."""

    def __init__(self, directory: Path, pg: PostgresCluster, redis: RedisServer | None):
        self.directory, self.pg, self.redis = directory, pg, redis
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "REDIS_URL", "DATABASE_URL")}
        self.env.update({
            "DJANGO_SETTINGS_MODULE": "cdp.settings", "DEBUG": "false", "SECRET_KEY": _key() + _key(),
            "ALLOWED_HOSTS": "127.0.0.1,localhost", "SECURE_SSL_REDIRECT": "false",
            "TESSERA_MASTER_KEYS": _key(), "TESSERA_INDEX_KEY": _key(), "TESSERA_LEDGER_KEY": _key(),
            "DATABASE_URL": pg.url("tessera"), "TESSERA_VAR_DIR": str(directory / "var"),
            "TESSERA_API_RATE": "1000/s", "LOG_LEVEL": "WARNING", "OPENBLAS_NUM_THREADS": "1",
            "TESSERA_WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true", "TESSERA_WEBHOOK_RELAY_INTERVAL_SECONDS": "1",
            "TESSERA_WEBHOOK_RETRY_BASE_SECONDS": "1",
        })
        if redis is not None:
            self.env["CELERY_BROKER_URL"] = redis.url
        self.processes: list[subprocess.Popen] = []
        self.port = free_port()

    def manage(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed: {result.stderr[-2000:]}")
        return result.stdout

    def setup(self) -> None:
        self.pg.psql("CREATE DATABASE tessera", database="postgres")
        self.manage("migrate", "--noinput", "-v0")
        self.write_key = self.manage("create_source", "crm", "--name", "CRM", "--kind", "first_party",
                                     "--trust", "80").strip().splitlines()[-1]
        for key in SCENARIO_SOURCES:
            self.manage("create_source", key, "--name", key, "--kind", "first_party", "--trust", "60")
        self.api_key = self.manage("create_api_key", "faults", "--scopes",
                                   "profiles:read,profiles:write,events:write,items:write,changes:read,"
                                   "webhooks:manage").strip().splitlines()[-1]

    def serve(self, workers: int = 2) -> None:
        log = open(self.directory / "gunicorn.log", "ab")  # noqa: SIM115 (kept open for the process)
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "cdp.wsgi:application", "-b", f"127.0.0.1:{self.port}",
             "-w", str(workers), "--timeout", "60", "--graceful-timeout", "2"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        wait_until(lambda: self._healthy(process), 60, "gunicorn did not answer /healthz")

    def _healthy(self, process: subprocess.Popen) -> bool:
        if process.poll() is not None:
            raise RuntimeError("gunicorn exited at start-up: "
                               + (self.directory / "gunicorn.log").read_text()[-2000:])
        try:
            return self.call("GET", "/healthz", timeout=2)[0] == 200
        except OSError:
            return False

    def runserver(self) -> None:
        """What `./dev run` serves with: Django's threaded development server."""
        log = open(self.directory / "runserver.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{self.port}", "--noreload"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        wait_until(lambda: self._healthy(process), 60, "runserver did not answer /healthz")

    def work(self) -> subprocess.Popen:
        """`celery worker -B` (beat inside) on the same services."""
        log = open(self.directory / "worker.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "cdp", "worker", "-B", "--pool", "solo", "-l", "warning",
             "--without-gossip", "--without-mingle", "-s", str(self.directory / "beat-schedule")],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)

    def call(self, method: str, path: str, body=None, headers: dict | None = None,
             timeout: float = 30) -> tuple[int, dict, dict | None]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        all_headers = {"Authorization": f"Bearer {self.api_key}", **(headers or {})}
        if body is not None:
            body = json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        try:
            connection.request(method, path, body=body, headers=all_headers)
            response = connection.getresponse()
            raw = response.read()
            try:
                payload = json.loads(raw) if raw else None
            except ValueError:
                payload = None
            return response.status, {k.lower(): v for k, v in response.getheaders()}, payload
        finally:
            connection.close()

    def segment(self, batch: list[dict]) -> tuple[int, dict, dict | None]:
        token = base64.b64encode(f"{self.write_key}:".encode()).decode()
        return self.call("POST", "/v1/batch", {"batch": batch}, headers={"Authorization": f"Basic {token}"})


# --- figures ----------------------------------------------------------------------------------


@dataclass
class Report:
    scenario: str
    statuses: Counter = field(default_factory=Counter)  # every answer, by status code
    outage_statuses: Counter = field(default_factory=Counter)  # answers while the service was away
    accepted_during_outage: int = 0
    lost: int = 0
    duplicated: int = 0
    recovery_seconds: float | None = None
    notes: dict = field(default_factory=dict)

    def line(self) -> str:
        statuses = ", ".join(f"{code}×{n}" for code, n in sorted(self.statuses.items()))
        outage = ", ".join(f"{code}×{n}" for code, n in sorted(self.outage_statuses.items()))
        recovery = "-" if self.recovery_seconds is None else f"{self.recovery_seconds:.1f} s"
        return (f"{self.scenario}: accepted during outage {self.accepted_during_outage}; answers {statuses} "
                f"(during outage {outage}); lost {self.lost}; duplicated {self.duplicated}; recovery {recovery}")


def profile_batch(prefix: str, number: int, size: int) -> dict:
    return {"source": prefix, "records": [
        {"external_id": f"{prefix}-{number}-{i}", "identifiers": {"email": f"{prefix}.{number}.{i}@example.org"},
         "attributes": {"tier": i % 5}} for i in range(size)]}


def send_until_accepted(product: Product, body: dict, key: str, report: Report, outage: threading.Event,
                        deadline: float) -> None:
    """POST a profiles batch under an Idempotency-Key until it answers 200, as an SDK
    would (honouring Retry-After, capped short for the test)."""
    while time.monotonic() < deadline:
        away = outage.is_set()
        try:
            status, headers, _ = product.call("POST", "/api/v1/profiles/batch", body,
                                              headers={"Idempotency-Key": key}, timeout=30)
        except OSError:
            status, headers = 0, {}  # no answer at all
        report.statuses[status] += 1
        if away:
            report.outage_statuses[status] += 1
        if status == 200:
            if away:
                report.accepted_during_outage += 1
            return
        if status == 503:
            assert "retry-after" in headers, "a 503 without Retry-After"
        time.sleep(min(float(headers.get("retry-after", 0.2) or 0.2), 0.2))
    raise TimeoutError(f"batch {key} was never accepted")


def stored_records(pg: PostgresCluster, prefix: str) -> tuple[int, int]:
    """(rows, distinct external ids) of the scenario's source records."""
    rows = pg.psql("SELECT count(*), count(DISTINCT r.external_key) FROM cdp_sourcerecord r "
                   "JOIN cdp_source s ON s.id = r.source_id WHERE s.key = %s", (prefix,))
    return rows[0]


# --- scenarios --------------------------------------------------------------------------------


def postgres_restart(product: Product, *, batches: int = 40, size: int = 25, down_seconds: float = 2.0,
                     prefix: str = "pgr") -> Report:
    """Stream batches with idempotent retries; PostgreSQL stops after a quarter of them
    and comes back `down_seconds` later."""
    report = Report("PostgreSQL restarted mid-stream")
    outage = threading.Event()
    back_at: list[float] = []

    def restart() -> None:
        outage.set()
        product.pg.stop()
        down = time.monotonic()
        # Segment's endpoint and a read, while PostgreSQL is away.
        segment = product.segment([{"type": "identify", "userId": f"{prefix}-seg", "messageId": f"{prefix}-seg"}])
        report.notes["segment during outage"] = (segment[0], segment[1].get("retry-after"), segment[2])
        lookup = product.call("POST", "/api/v1/profiles/lookup", {"email": f"{prefix}.0.0@example.org"})
        report.notes["lookup during outage"] = (lookup[0], lookup[1].get("retry-after"), (lookup[2] or {}).get("code"))
        time.sleep(max(0.0, down_seconds - (time.monotonic() - down)))
        product.pg.start()
        back_at.append(time.monotonic())
        outage.clear()

    deadline = time.monotonic() + 120
    restarter = None
    first_success_after: float | None = None
    for number in range(batches):
        if number == batches // 4:
            restarter = threading.Thread(target=restart)
            restarter.start()
            time.sleep(0.2)  # the stop is under way
        send_until_accepted(product, profile_batch(prefix, number, size), f"{prefix}-{number}", report, outage,
                            deadline)
        if back_at and first_success_after is None:
            first_success_after = time.monotonic()
    restarter.join()
    if first_success_after is not None:
        report.recovery_seconds = max(0.0, first_success_after - back_at[0])
    rows, distinct = stored_records(product.pg, prefix)
    report.lost = batches * size - distinct
    report.duplicated = rows - distinct
    # Replaying every key now stores nothing more.
    for number in range(batches):
        status, _, _ = product.call("POST", "/api/v1/profiles/batch", profile_batch(prefix, number, size),
                                    headers={"Idempotency-Key": f"{prefix}-{number}"})
        assert status == 200
    rows_after, _ = stored_records(product.pg, prefix)
    report.duplicated += rows_after - rows
    return report


def runserver_connections(product: Product, *, requests: int = 150) -> Report:
    """Requests to the development server, each on a new HTTP connection (a new thread
    there): the database connections it holds stay bounded."""
    report = Report("runserver: database connections")
    peak = 0
    for number in range(requests):
        status, _, _ = product.call("POST", "/api/v1/profiles/lookup", {"email": f"conn.{number}@example.org"})
        report.statuses[status] += 1
        if number % 10 == 9:
            held = product.pg.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'tessera' "
                                   "AND pid <> pg_backend_pid()")[0][0]
            peak = max(peak, held)
    report.notes["peak connections"] = peak
    return report


class Receiver:
    """A webhook receiver on a private port: counts event ids."""

    def __init__(self):
        self.event_ids: list[str] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                self.rfile.read(length)
                receiver.event_ids.append(self.headers.get("Tessera-Event-Id", ""))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _requests_during_redis_outage(product: Product, prefix: str, number: int) -> list[tuple[str, int]]:
    """One of each kind of request an integrator makes: ingestion and reads."""
    answers = []
    status, _, body = product.call("POST", "/api/v1/profiles/batch", profile_batch(prefix, number, 5),
                                   headers={"Idempotency-Key": f"{prefix}-{number}"})
    answers.append(("profiles batch", status))
    profile_id = body["results"][0]["profile_id"] if status == 200 else None
    status, _, _ = product.call("POST", "/api/v1/events/batch", {"source": "crm", "events": [
        {"profile": {"email": f"{prefix}.{number}.0@example.org"}, "type": "view", "item_id": f"{prefix}-item"}]})
    answers.append(("events batch", status))
    status, _, _ = product.call("POST", "/api/v1/items/batch", {"items": [
        {"id": f"{prefix}-item-{number}", "title": "Item", "category": "books"}]})
    answers.append(("items batch", status))
    status, _, _ = product.segment([{"type": "identify", "userId": f"{prefix}-u-{number}",
                                     "traits": {"email": f"{prefix}.seg.{number}@example.org"},
                                     "messageId": f"{prefix}-m-{number}"}])
    answers.append(("segment batch", status))
    status, _, _ = product.call("POST", "/api/v1/profiles/lookup", {"email": f"{prefix}.{number}.1@example.org"})
    answers.append(("profile lookup", status))
    if profile_id:
        status, _, _ = product.call("GET", f"/api/v1/profiles/{profile_id}")
        answers.append(("profile get", status))
    status, _, _ = product.call("GET", "/api/v1/changes?limit=10")
    answers.append(("change feed", status))
    return answers


def redis_outage(product: Product, *, rounds: int = 4, prefix: str = "rds") -> Report:
    """Redis (broker and cache) killed while integrators write and read; started again
    later. Outbox work (webhook deliveries of the outage's changes) drains after."""
    report = Report("Redis (broker and cache) stopped and started")
    receiver = Receiver()
    try:
        status, _, _ = product.call("POST", "/api/v1/webhooks", {"url": receiver.url, "events": ["profile.created"]})
        assert status == 201, status
        before = [a for a in _requests_during_redis_outage(product, prefix, 0)]
        assert all(status == 200 for _, status in before), before
        product.redis.stop()
        started = time.monotonic()
        ready = product.call("GET", "/readyz")
        report.notes["readyz during outage"] = (ready[0], ready[2] and ready[2].get("failed"))
        slowest = 0.0
        for number in range(1, rounds + 1):
            sent = time.monotonic()
            answers = _requests_during_redis_outage(product, prefix, number)
            slowest = max(slowest, (time.monotonic() - sent) / len(answers))
            for name, status in answers:
                report.statuses[status] += 1
                report.outage_statuses[status] += 1
                report.notes.setdefault("by request", {}).setdefault(name, Counter())[status] += 1
                if status == 200 and name in ("profiles batch", "events batch", "items batch", "segment batch"):
                    report.accepted_during_outage += 1
        report.notes["slowest request during outage (s)"] = round(slowest, 3)
        report.notes["outage seconds"] = round(time.monotonic() - started, 1)
        created_in_outage = stored_records(product.pg, prefix)[0]
        product.redis.start()
        back = time.monotonic()
        wait_until(lambda: product.call("GET", "/readyz")[0] == 200, 30, "/readyz did not recover")
        report.notes["readyz back after (s)"] = round(time.monotonic() - back, 1)
        # Every profile.created of the outage reaches the receiver (outbox → relay → delivery).
        expected = {str(row[0]) for row in product.pg.psql(
            "SELECT event_id FROM core_outboxmessage WHERE topic = 'profile.created'")}
        wait_until(lambda: expected <= set(receiver.event_ids), 60, "webhook deliveries did not drain")
        report.recovery_seconds = time.monotonic() - back
        report.notes["deliveries drained"] = len(expected)
        report.lost = len(expected - set(receiver.event_ids))
        report.duplicated = 0
        report.notes["records written"] = created_in_outage
        counts = Counter(receiver.event_ids)
        report.notes["deliveries repeated (at-least-once)"] = sum(n - 1 for n in counts.values())
    finally:
        receiver.close()
    return report


def broker_away_during_pipeline(product: Product, *, customers: int = 300, down_seconds: float = 3.0) -> Report:
    """Redis (the broker) killed while a pipeline run is in its fan-out, started again:
    the run finishes without a restart (queued messages died with Redis; the watchdog
    dispatches the run's current step again)."""
    report = Report("Broker away during a pipeline run")
    product.manage("load_demo", "--customers", str(customers))
    command = subprocess.Popen([sys.executable, "manage.py", "run_pipeline", "--chunk-size", "25", "--timeout", "240"],
                               cwd=ROOT, env=product.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def running_chunk_done():
        rows = product.pg.psql("SELECT count(*) FROM personalization_pipelinechunk WHERE status = 'done'")
        return rows and rows[0][0] > 0

    wait_until(running_chunk_done, 120, "the run did not start its chunks", interval=0.05)
    product.redis.stop()
    stopped = time.monotonic()
    time.sleep(down_seconds)
    report.notes["state when the broker went"] = product.pg.psql(
        "SELECT status, stage FROM personalization_pipelinerun ORDER BY id DESC LIMIT 1")[0]
    product.redis.start()
    back = time.monotonic()

    def finished():
        rows = product.pg.psql("SELECT status FROM personalization_pipelinerun ORDER BY id DESC LIMIT 1")
        return rows[0][0] if rows[0][0] in ("succeeded", "failed") else None

    report.notes["status"] = wait_until(finished, 180, "the run did not finish", interval=0.5)
    report.recovery_seconds = time.monotonic() - back
    report.notes["outage seconds"] = round(back - stopped, 1)
    try:
        output, errors = command.communicate(timeout=60)
        report.notes["run_pipeline exit"] = command.returncode
    except subprocess.TimeoutExpired:
        command.kill()
        report.notes["run_pipeline exit"] = None
    report.notes["chunks done twice"] = product.pg.psql(
        "SELECT count(*) FROM personalization_pipelinechunk WHERE attempts > 1")[0][0]
    return report


def environment(directory: Path | None = None, *, redis: bool = True):
    """Start the private services and the product's database; returns (product, cleanup)."""
    # Not under pytest's own temporary directory: the postgres user must reach it.
    directory = directory or Path(tempfile.mkdtemp(prefix="tessera-faults-"))
    os.chmod(directory, 0o755)  # noqa: S103 (the postgres user reads it; nothing secret in it)
    pg_dir = directory / "pg"
    pg_dir.mkdir()
    pg = PostgresCluster(pg_dir)
    pg.start()
    redis_server = None
    if redis:
        redis_dir = directory / "redis"
        redis_dir.mkdir()
        redis_server = RedisServer(redis_dir)
        redis_server.start()
    product = Product(directory, pg, redis_server)

    def cleanup() -> None:
        product.stop()
        if redis_server is not None:
            redis_server.stop()
        pg.stop()
        shutil.rmtree(directory, ignore_errors=True)

    try:
        product.setup()
    except BaseException:
        cleanup()
        raise
    return product, cleanup
