"""Killing the server mid-batch and retrying with the same Idempotency-Key loses nothing
and duplicates nothing (CONTRACT.md: the key's record is written in the same transaction
as the effects).

The product runs under gunicorn as a subprocess on the test database. A large profiles
batch is posted with an Idempotency-Key; once PostgreSQL shows the request's transaction
open (it holds the key's advisory lock), gunicorn's master and worker are SIGKILLed
together. The server is started again and the same request retried until it answers
200: every record is then stored exactly once and the (replayed) answer lists every
index. Sending the batch again under the key stores nothing more.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BATCH = 1000  # the largest batch the contract allows: several seconds of work, so a kill lands inside it
KEY = "crash-retry-batch-1"


def _encode(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`gunicorn cdp.wsgi:application -w 1` in its own process group, on the test database."""

    def __init__(self, env: dict, port: int, log: Path):
        self.env, self.port, self.log = env, port, log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "cdp.wsgi:application", "-b", f"127.0.0.1:{self.port}", "-w", "1",
                 "--timeout", "120", "--graceful-timeout", "1"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"gunicorn exited at start-up:\n{self.log.read_text()[-3000:]}")
            try:
                status, _, _ = request(self.port, "GET", "/healthz", timeout=2)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        pytest.fail(f"gunicorn did not answer /healthz within 60 s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL master and worker at once: no graceful shutdown, no response."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def worker_pids(self) -> list[int]:
        pid = self.process.pid
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = 120) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.fixture
def server(postgres, transactional_db, settings, tmp_path):
    from django.db import connection

    db = connection.settings_dict
    database_url = (f"postgres://{db['USER']}{':' + db['PASSWORD'] if db['PASSWORD'] else ''}"
                    f"@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}")
    env = {key: value for key, value in os.environ.items()
           if key not in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "REDIS_URL")}  # tasks in-process
    env.update({
        "DJANGO_SETTINGS_MODULE": "cdp.settings",
        "DATABASE_URL": database_url,
        "DATABASE_CONN_MAX_AGE": "0",
        "TESSERA_MASTER_KEYS": ",".join(_encode(k) for k in settings.TESSERA_MASTER_KEYS),
        "TESSERA_INDEX_KEY": _encode(settings.TESSERA_INDEX_KEY),
        "TESSERA_LEDGER_KEY": _encode(settings.TESSERA_LEDGER_KEY),
        "TESSERA_VAR_DIR": str(tmp_path),
        "TESSERA_API_RATE": "1000/s",
        "LOG_LEVEL": "WARNING",
        "OPENBLAS_NUM_THREADS": "1",
    })
    server = Server(env, _free_port(), tmp_path / "gunicorn.log")
    yield server
    server.kill()


def _batch_body() -> bytes:
    records = [{"external_id": f"crash-{i}",
                "identifiers": {"email": f"crash.{i}@example.org", "crm_id": f"CR-{i}"},
                "attributes": {"first_name": f"Name {i}", "tier": i % 7, "country": "GB"}}
               for i in range(BATCH)]
    return json.dumps({"source": "crm", "records": records}).encode()


def _open_transactions_holding_advisory_locks() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                       "WHERE l.locktype = 'advisory' AND a.pid <> pg_backend_pid() AND a.datname = current_database()")
        return cursor.fetchone()[0]


def _stored_state(source_key: str) -> dict:
    from django.db.models import Count

    from cdp.models import Identity, Profile, SourceRecord

    records = SourceRecord.objects.filter(source__key=source_key)
    duplicates = list(records.values("external_key").annotate(n=Count("id")).filter(n__gt=1))
    return {
        "records": records.count(),
        "distinct_records": records.values("external_key").distinct().count(),
        "duplicate_records": duplicates,
        "crm_identities": Identity.objects.filter(kind="crm_id", namespace=source_key).count(),
        "email_identities": Identity.objects.filter(kind="email").count(),
        "profiles": Profile.objects.count(),
    }


def _retry_until_200(server: Server, body: bytes, headers: dict, *, within: float = 120) -> tuple[int, dict, bytes]:
    """What a careful client does after losing the connection: the same request, same key."""
    deadline = time.monotonic() + within
    seen = []
    while time.monotonic() < deadline:
        try:
            status, response_headers, content = request(server.port, "POST", "/api/v1/profiles/batch", body, headers)
        except OSError as error:
            seen.append(type(error).__name__)
            time.sleep(0.2)
            continue
        seen.append(status)
        if status == 200:
            return status, response_headers, content
        assert status == 409, (status, content[:500])  # the killed request's transaction not yet gone
        time.sleep(0.2)
    pytest.fail(f"no 200 within {within} s; answers: {seen}")


def test_killing_the_server_mid_batch_then_retrying_with_the_key_stores_every_record_once(server):
    from cdp.api.services.api_keys import api_key_create
    from cdp.core.http.scopes import SCOPES
    from cdp.models import Profile
    from cdp.services.sources import source_create

    source_create(key="crm", name="CRM", kind="first_party", trust=60)
    _, bearer = api_key_create(name="crash test", scopes=list(SCOPES))
    profiles_before = Profile.objects.count()
    body = _batch_body()
    headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json", "Idempotency-Key": KEY}

    server.start()
    outcome: dict = {}

    def post():
        try:
            outcome["response"] = request(server.port, "POST", "/api/v1/profiles/batch", body, headers)
        except OSError as error:
            outcome["error"] = error

    client = threading.Thread(target=post)
    client.start()
    # In flight: the request's transaction is open once it holds the key's advisory lock.
    deadline = time.monotonic() + 30
    while _open_transactions_holding_advisory_locks() == 0:
        assert time.monotonic() < deadline, "the request never started its transaction"
        assert "response" not in outcome, "answered before it could be killed"
        time.sleep(0.005)
    time.sleep(0.05)  # some records written inside the open transaction
    workers = server.worker_pids()
    server.kill()
    client.join(timeout=30)
    assert "response" not in outcome, f"the batch finished before the kill ({outcome['response'][0]}); make it bigger"
    assert isinstance(outcome.get("error"), OSError)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers and not any(_alive(pid) for pid in workers), "the gunicorn worker survived SIGKILL"

    # Nothing of the killed request was committed: no record, no profile, no key.
    from cdp.core.http.models import IdempotencyRecord

    assert _stored_state("crm")["records"] == 0
    assert Profile.objects.count() == profiles_before
    assert not IdempotencyRecord.objects.filter(key=KEY).exists()

    server.start()
    status, response_headers, content = _retry_until_200(server, body, headers)
    first = json.loads(content)
    assert [r["index"] for r in first["results"]] == list(range(BATCH))
    assert {r["status"] for r in first["results"]} == {"created"}, {r["status"] for r in first["results"]}
    state = _stored_state("crm")
    assert state == {"records": BATCH, "distinct_records": BATCH, "duplicate_records": [],
                     "crm_identities": BATCH, "email_identities": BATCH,
                     "profiles": profiles_before + BATCH}, state

    # The same batch twice more under the key: replayed, nothing stored again.
    for _ in range(2):
        status, response_headers, content = request(server.port, "POST", "/api/v1/profiles/batch", body, headers)
        assert status == 200, content[:500]
        assert response_headers.get("Idempotent-Replayed") == "true"
        assert json.loads(content) == first
    assert _stored_state("crm") == state
    assert IdempotencyRecord.objects.filter(key=KEY).count() == 1


def test_the_same_batch_sent_three_times_under_one_key_is_stored_once(server):
    from cdp.api.services.api_keys import api_key_create
    from cdp.core.http.scopes import SCOPES
    from cdp.services.sources import source_create

    source_create(key="crm", name="CRM", kind="first_party", trust=60)
    _, bearer = api_key_create(name="replay test", scopes=list(SCOPES))
    body = _batch_body()
    headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json", "Idempotency-Key": KEY}
    server.start()
    answers = [request(server.port, "POST", "/api/v1/profiles/batch", body, headers) for _ in range(3)]
    assert [status for status, _, _ in answers] == [200, 200, 200], [a[2][:300] for a in answers]
    assert [h.get("Idempotent-Replayed") for _, h, _ in answers] == [None, "true", "true"]
    assert answers[0][2] and json.loads(answers[1][2]) == json.loads(answers[0][2]) == json.loads(answers[2][2])
    assert [r["index"] for r in json.loads(answers[0][2])["results"]] == list(range(BATCH))
    state = _stored_state("crm")
    assert state["records"] == state["distinct_records"] == state["crm_identities"] == BATCH, state
    assert state["duplicate_records"] == []


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie no one has reaped yet (its parent, the master,
    died with it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")
