"""A real HTTP receiver on 127.0.0.1 (random port) and helpers for webhook tests."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rest_framework.test import APIClient


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes
    status: int

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers every POST with `status` (a list is used up one answer at a time)."""

    port: int
    status: int | list = 200
    delay: float = 0.0
    location: str | None = None
    requests: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def next_status(self) -> int:
        if isinstance(self.status, list):
            return self.status.pop(0) if len(self.status) > 1 else self.status[0]
        return self.status

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver.next_status()
                receiver.requests.append(Received(self.path, dict(self.headers), body, status))
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def accepted_event_ids(self) -> list[str]:
        """Event ids of the requests this receiver answered 2xx, in arrival order."""
        return [r.headers["Tessera-Event-Id"] for r in self.requests if 200 <= r.status < 300]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def local_receivers_allowed(settings):
    """The receivers here listen on 127.0.0.1, which production mode would refuse."""
    settings.TESSERA_WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    settings.PRODUCTION = False


@pytest.fixture
def receiver():
    """A receiver that is up and answers 200; set `.status` to change its answers."""
    started = Receiver(port=free_port()).start()
    yield started
    started.stop()


@pytest.fixture
def make_receiver():
    made: list[Receiver] = []

    def make(*, start: bool = True, **options) -> Receiver:
        r = Receiver(port=free_port(), **options)
        made.append(r.start() if start else r)
        return r

    yield make
    for r in made:
        r.stop()


@pytest.fixture
def fast_retries(settings):
    """Retries are due at once, so tests run the relay again instead of waiting."""
    settings.TESSERA_WEBHOOK_RETRY_BASE_SECONDS = 0
    settings.TESSERA_WEBHOOK_RETRY_MAX_SECONDS = 0
    return settings


@pytest.fixture
def subscribe(db):
    from cdp.webhooks.services.subscriptions import webhook_create

    def make(url: str, events=("profile.created", "profile.updated", "consent.changed", "profile.erased",
                                "profile.merged", "profile.unmerged", "dsr.completed")):
        return webhook_create(url=url, events=list(events))

    return make


@pytest.fixture
def make_client(db):
    from cdp.api.services.api_keys import api_key_create

    def make(*scopes: str) -> APIClient:
        _, plaintext = api_key_create(name="webhook tests", scopes=list(scopes))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
        return client

    return make
