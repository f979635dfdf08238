"""Issue 14, findings 5 and 7: secrets in logs, Referers and metrics; unbounded metric labels;
webhook URLs that hide an internal address; guessable throttle keys; HTML errors under /api/.

Each test is an attack as an outsider would run it, through the real HTTP stack.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client

from cdp.core.observability import JsonFormatter

pytestmark = pytest.mark.django_db

EMAIL = "ada.lovelace@example.com"


# --- helpers ---------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def magic_link(source_factory) -> str:
    """The path of a real, unused sign-in link, as mailed to a customer."""
    from cdp.services.resolution import profiles_ingest

    source = source_factory("crm", trust=80)
    profiles_ingest(source=source, records=[{"external_id": "c-1", "identifiers": {"email": EMAIL}}])
    response = Client().post("/me/signin/", {"email": EMAIL})
    assert response.status_code == 302
    [message] = mail.outbox
    match = re.search(r"https?://[^/\s]+(/me/signin/[^/\s]+/)", message.body)
    assert match, "no sign-in link in the mail"
    mail.outbox.clear()
    return match.group(1)


def _token(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[1]


class _EveryLine(logging.Handler):
    """Every record any logger emits, formatted as a plain text handler and as our JSON
    handler would write it (messages, arguments, extras, tracebacks)."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.plain = logging.Formatter("%(name)s %(levelname)s %(message)s")
        self.json = JsonFormatter()

    def emit(self, record):
        self.lines.append(self.plain.format(record))
        self.lines.append(self.json.format(record))
        self.lines.append(record.getMessage())

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def every_log_line(caplog):
    """Attach a capturing handler at DEBUG to the root logger and to every logger that does
    not propagate (django.request, django.server, ...); lower every level to DEBUG."""
    caplog.set_level(logging.DEBUG)
    capture = _EveryLine()
    loggers = [logging.getLogger()] + [
        logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    for name in ("django", "django.request", "django.security.csrf", "django.server", "tessera.access"):
        loggers.append(logging.getLogger(name))
    saved = [(logger, logger.level) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        if logger is logging.getLogger() or not logger.propagate:
            logger.addHandler(capture)
    try:
        yield capture
    finally:
        for logger, level in saved:
            logger.setLevel(level)
            logger.removeHandler(capture)


def _secret_path_error(kind: str, path: str, monkeypatch):
    """Make one failing request of the given kind to a magic-link path; returns the response."""
    if kind == "csrf":
        return Client(enforce_csrf_checks=True).post(path)
    if kind == "not_found":
        return Client().get(path + "extra/")
    if kind == "tampered":
        return Client().get(path[:-1] + "*/")  # the token with a stray character: refused, 400
    if kind == "method_not_allowed":
        return Client().put(path)
    if kind == "server_error":
        import web.views.me

        def broken(token):
            raise RuntimeError(f"the sign-in store is unavailable ({token})")

        monkeypatch.setattr(web.views.me, "sign_in_link_redeem", broken)
        return Client(raise_request_exception=False).post(path)
    raise AssertionError(kind)


ERROR_KINDS = {"csrf": 403, "not_found": 404, "tampered": 400, "method_not_allowed": 405, "server_error": 500}


# --- finding 5: magic-link tokens reach the logs ---------------------------------------------------------


@pytest.mark.parametrize("kind", list(ERROR_KINDS))
def test_magic_link_token_read_from_the_logs_after_a_failed_request(kind, magic_link, every_log_line, caplog,
                                                                     monkeypatch, client):
    token = _token(magic_link)

    response = _secret_path_error(kind, magic_link, monkeypatch)

    assert response.status_code == ERROR_KINDS[kind]
    assert every_log_line.lines, "nothing was logged: the capture is not working"
    assert token not in every_log_line.text
    assert token not in caplog.text
    assert "/me/signin/" in every_log_line.text  # the event is still logged, only the secret is gone
    # Nor in a metric label.
    assert token not in client.get("/metrics").content.decode()


@pytest.mark.parametrize("kind", ["page", *ERROR_KINDS])
def test_magic_link_token_sent_onwards_in_a_referer(kind, magic_link, monkeypatch):
    """The confirm page loads our CSS and JS and posts a form: a Referer naming its URL would
    carry the token to static-file servers, proxies and their access logs."""
    if kind == "page":
        response = Client().get(magic_link)
        assert response.status_code == 200
    else:
        response = _secret_path_error(kind, magic_link, monkeypatch)
    policy = response.get("Referrer-Policy", "")
    assert policy in ("no-referrer", "strict-origin", "origin"), policy
    # A <meta name="referrer"> in the page would override the header.
    body = response.content.decode(errors="replace")
    metas = re.findall(r'<meta\s+name="referrer"\s+content="([^"]*)"', body)
    assert all(meta in ("no-referrer", "strict-origin", "origin") for meta in metas), metas


# --- finding 7a: /metrics grows without bound from random HTTP methods -----------------------------------


def test_random_http_methods_grow_the_metrics_without_bound(client):
    invented = [f"X{secrets.token_hex(6).upper()}" for _ in range(20)]
    for method in invented:
        client.generic(method, "/healthz")
    client.generic(method, "/no/such/page/" + secrets.token_hex(8))

    text = client.get("/metrics").content.decode()

    assert not any(method in text for method in invented)
    methods = set(re.findall(r'method="([^"]*)"', text))
    assert methods <= {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other"}, methods
    assert "other" in methods
    routes = set(re.findall(r'route="([^"]*)"', text))
    assert all(route == "unmatched" or route.startswith("/") for route in routes)
    assert not any("/no/such/page/" in route for route in routes)


# --- finding 7b: webhook URLs that hide an internal address -------------------------------------------------

# Each of these names a non-public address in a form Python's ipaddress does not read but
# the resolver does (or one ipaddress calls global): all were accepted at creation.
HIDDEN_INTERNAL = [
    "https://127.1/", "https://2130706433/", "https://0x7f.0.0.1/", "https://0/", "https://[64:ff9b::7f00:1]/",
    "https://017700000001/", "https://0x7f000001/", "https://127.0.1/", "https://0177.0.0.1/",
    "https://10.1/", "https://0xa9.0xfe.0xa9.0xfe/", "https://3232235521/",  # 10.0.0.1, 169.254.169.254, 192.168.0.1
    "https://%31%32%37.0.0.1/", "https://\uff11\uff12\uff17.0.0.1/",  # percent-encoded, full-width digits
    "https://[::127.0.0.1]/", "https://[64:ff9b::a9fe:a9fe]/", "https://[64:ff9b:1::a00:1]/",
    "https://[2002:7f00:1::1]/", "https://[2002:a00:1::]/", "https://[fec0::1]/", "https://192.0.0.8/",
]


@pytest.fixture
def webhook_client(settings):
    from rest_framework.test import APIClient

    from cdp.api.services.api_keys import api_key_create

    settings.PRODUCTION = True
    settings.TESSERA_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    _, plaintext = api_key_create(name="attacker", scopes=["webhooks:manage"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return api


@pytest.mark.parametrize("url", HIDDEN_INTERNAL)
def test_webhook_url_hiding_an_internal_address_is_accepted_at_creation(url, webhook_client):
    response = webhook_client.post("/api/v1/webhooks", {"url": url, "events": ["consent.changed"]}, format="json")

    assert response.status_code in (400, 422), (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "validation_failed"
    assert body["errors"][0]["field"] == "url"
    assert body["errors"][0]["code"] in ("private_address", "invalid_url")


@pytest.mark.parametrize("address", ["64:ff9b::7f00:1", "64:ff9b:1::a00:1", "2002:7f00:1::1", "fec0::1",
                                     "::127.0.0.1", "64:ff9b::a00:1", "192.0.0.8"])
def test_webhook_delivery_connects_to_a_non_public_address_python_calls_global(address, settings):
    """Creation and delivery ask the same question: an address refused at one is refused at the other."""
    from cdp.webhooks.targets import address_allowed

    settings.TESSERA_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    assert address_allowed(address) is False


# --- finding 7c: throttle keys are plain SHA-256 of e-mail addresses ------------------------------------------


def test_throttle_keys_in_the_cache_reveal_which_addresses_asked_for_links(settings, db):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "throttle-keys"}}
    address = "203.0.113.77"
    Client(REMOTE_ADDR=address).post("/me/signin/", {"email": EMAIL})

    keys = list(cache._cache)  # LocMemCache: the stored keys, as Redis would list them
    assert any("throttle" in key for key in keys), keys  # the request was counted
    # Whoever reads the cache can hash a list of known addresses and compare: nothing matches.
    for value in (EMAIL, EMAIL.lower(), address):
        for candidate in (value, value.strip().lower()):
            for digest in (hashlib.sha256(candidate.encode()).hexdigest(), hashlib.md5(candidate.encode()).hexdigest(),  # noqa: S324
                           hashlib.sha1(candidate.encode()).hexdigest()):  # noqa: S324
                assert not any(digest in key for key in keys)
            assert not any(candidate in key for key in keys)


def test_throttle_keys_differ_per_deployment_key(settings):
    """The same address under another index key gives another cache key: the key is keyed."""
    from cdp.core.pseudonyms import pseudonym

    first = pseudonym("test", EMAIL)
    settings.TESSERA_INDEX_KEY = bytes(range(32))
    assert pseudonym("test", EMAIL) != first
    assert pseudonym("test", EMAIL) != pseudonym("other", EMAIL)


# --- finding 7d: unknown /api/ paths answer HTML ------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), [
    ("get", "/api/v1/no-such-thing"), ("get", "/api/v1/no-such-thing/"), ("post", "/api/v1/no/such/thing/"),
    ("get", "/api/"), ("get", "/api/v2/profiles"), ("get", "/api/v1/profiles/not-a-uuid/x"),
    ("delete", "/api/v1/dsr/../../etc"), ("get", "/api/v1/webhooks/123/unknown"),
])
def test_unknown_api_path_answers_html_not_problem_json(method, path, client):
    response = getattr(client, method)(path)

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "not_found" and body["status"] == 404
    assert path not in json.dumps(body)  # never echoes the request


@pytest.mark.parametrize(("method", "path"), [("post", "/api/schema/"), ("delete", "/api/docs/")])
def test_wrong_method_on_an_api_path_answers_html_not_problem_json(method, path, client):
    response = getattr(client, method)(path)

    assert response.status_code == 405
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "method_not_allowed"
    assert "GET" in response["Allow"]


def test_unknown_segment_path_answers_html_not_json(client):
    response = client.post("/v1/no-such-call", data=b"{}", content_type="application/json")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False and body["code"] == "not_found"
