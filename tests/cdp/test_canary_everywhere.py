"""Canary personal data sent through every ingestion path never appears in logs, task
messages, the database in plain text (idempotency records, outbox payloads, access log,
DSR rows, the Segment ingestion-error log, ...) or error bodies.

A canary email, phone and name go through the REST profiles batch, events batch, profile
correction (PATCH), lookup, consents batch and DSR endpoints and through Segment's
identify, track and batch (with a malformed message), each in valid and invalid forms.
Everything is recorded while that happens:

- every log record of every logger at DEBUG, as the production JSON formatter writes it;
- every Celery task message published, to a real in-memory kombu transport (`memory://`),
  its body and headers as `before_task_publish` sees them; the tasks are then run
  in-process, so what they do (the DSR export, ...) is checked too;
- every row of every table afterwards (encrypted columns hold ciphertext, so a canary
  found anywhere is a plain-text copy);
- every error body, and every batch answer (which hold ids, statuses and codes only).

A canary is searched as sent, lower-cased, upper-cased, normalised (E.164 phone), as hex,
URL-encoded, JSON-escaped and base64 (at each byte alignment, standard and URL-safe).
"""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import quote, quote_plus

import pytest
from celery.signals import before_task_publish
from django.apps import apps
from rest_framework.test import APIClient

from cdp.core.observability import JsonFormatter

pytestmark = pytest.mark.django_db(transaction=True)  # on_commit hooks run and publish their tasks

CANARY_EMAIL = "Canary.Qv7Zx@Example.ORG"
CANARY_PHONE = "+44 20 7183 8751"
CANARY_PHONE_E164 = "+442071838751"
CANARY_NAME = "Qvzxyl Canarywood"
CANARIES = [CANARY_EMAIL, CANARY_PHONE, CANARY_PHONE_E164, CANARY_NAME, "Canary.Qv7Zx", "Canarywood"]


def _base64_forms(data: bytes) -> set[str]:
    """The base64 text of `data` wherever it sits in a longer encoded string."""
    found = set()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + data).decode()
        start, end = -(-4 * offset // 3), 4 * (offset + len(data)) // 3
        inner = encoded[start:end]
        found |= {inner, inner.replace("+", "-").replace("/", "_")}
    return found


def _forms(value: str) -> set[str]:
    forms = set()
    for variant in {value, value.lower(), value.upper()}:
        data = variant.encode()
        forms |= {variant, data.hex(), data.hex().upper(), quote(variant), quote_plus(variant),
                  json.dumps(variant)[1:-1]}
        forms |= _base64_forms(data)
    return forms


NEEDLES = sorted({form for canary in CANARIES for form in _forms(canary)}, key=len)


def canaries_in(text: str) -> list[str]:
    lowered = text.lower()
    return [needle for needle in NEEDLES if needle in text or needle.lower() in lowered]


def test_the_search_finds_every_form_of_a_canary():
    blob = json.dumps({"payload": base64.b64encode(b"xy:" + CANARY_EMAIL.encode() + b";z").decode()})
    assert canaries_in(blob)
    assert canaries_in(base64.urlsafe_b64encode(b"a" + CANARY_NAME.encode()).decode())
    assert canaries_in(("prefix" + CANARY_PHONE_E164).encode().hex())
    assert canaries_in(quote(CANARY_EMAIL.lower()))
    assert canaries_in(json.dumps({"name": CANARY_NAME.upper()}))
    assert not canaries_in(json.dumps({"email": "someone.else@example.org", "phone": "+14155550132"}))


# --- recording ------------------------------------------------------------------------------------


@pytest.fixture
def every_log_record(caplog):
    """caplog at DEBUG on the root logger and on every logger that does not propagate."""
    caplog.set_level(logging.DEBUG)
    changed = []
    for logger in [logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict)]:
        if not isinstance(logger, logging.Logger):
            continue
        changed.append((logger, logger.level, logger.disabled))
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        if not logger.propagate:
            logger.addHandler(caplog.handler)
    yield caplog
    for logger, level, disabled in changed:
        logger.setLevel(level)
        logger.disabled = disabled
        if caplog.handler in logger.handlers:
            logger.removeHandler(caplog.handler)


@pytest.fixture
def task_messages(settings):
    """Tasks are published to a real in-memory kombu transport, not run eagerly."""
    from cdp.celery import app

    previous = (app.conf.broker_url, app.conf.task_always_eager)
    published = []

    def record(sender=None, body=None, headers=None, properties=None, **_):
        published.append({"task": sender, "body": body, "headers": headers, "properties": properties})

    app.conf.broker_url = "memory://"
    app.conf.task_always_eager = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    app._pool = None
    app.amqp._producer_pool = None
    before_task_publish.connect(record, weak=False)
    yield published
    before_task_publish.disconnect(record)
    # Fresh pools for whatever runs next. The in-memory pool is left open: kombu keeps
    # pools in a process-wide registry, and closing one here broke later publishers.
    app.conf.broker_url, app.conf.task_always_eager = previous[0], previous[1]
    app._pool = None
    app.amqp._producer_pool = None


# --- the test -------------------------------------------------------------------------------------


def test_canary_personal_data_never_leaks_from_any_ingestion_path(every_log_record, task_messages):
    from cdp.api.services.api_keys import api_key_create
    from cdp.core.http.scopes import SCOPES
    from cdp.services.sources import source_create

    source_create(key="crm", name="CRM", kind="first_party", trust=60)
    _, write_key = source_create(key="web", name="Web", kind="first_party", trust=40)
    _, bearer = api_key_create(name="canary", scopes=list(SCOPES))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {bearer}")
    segment = APIClient()
    segment.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{write_key}:".encode()).decode())
    answers: list[tuple[str, object, bool]] = []  # (label, response, may hold personal data)
    keys = iter(range(10**6))

    def post(label, path, body, *, client=api, personal=False, raw=None, **headers):
        headers.setdefault("Idempotency-Key", f"canary-{next(keys)}")
        if raw is not None:
            response = client.generic("POST", path, raw, content_type="application/json", headers=headers)
        else:
            response = client.post(path, body, format="json", headers=headers)
        answers.append((label, response, personal))
        return response

    person = {"email": CANARY_EMAIL, "phone": CANARY_PHONE}
    bad_email = f"{CANARY_NAME} <{CANARY_EMAIL}"

    # REST profiles batch: a valid record, then invalid forms of every field.
    created = post("profiles", "/api/v1/profiles/batch", {"source": "crm", "records": [
        {"external_id": "canary-1", "identifiers": {**person, "crm_id": "C-1"},
         "attributes": {"full_name": CANARY_NAME}},
        {"external_id": "other-1", "identifiers": {"email": "other.person@example.org"}},
        {"external_id": "bad-1", "identifiers": {"email": bad_email, "phone": CANARY_NAME}},
        {"external_id": CANARY_EMAIL * 20, "identifiers": {"email": CANARY_EMAIL}, "observed_at": CANARY_PHONE},
        {"external_id": "bad-3", "identifiers": {"email": CANARY_EMAIL}, "attributes": {CANARY_EMAIL: CANARY_NAME}},
        {"external_id": "bad-4", "identifiers": {"phone": CANARY_NAME + "x" * 40_000}},
        CANARY_EMAIL,
    ]}).json()["results"]
    profile_id, other_id = created[0]["profile_id"], created[1]["profile_id"]
    assert created[0]["status"] == "created" and all(r["status"] == "rejected" for r in created[2:]), created
    post("profiles: unknown source", "/api/v1/profiles/batch", {"source": CANARY_EMAIL, "records": []})
    post("profiles: wrong types", "/api/v1/profiles/batch", {"source": {"x": CANARY_NAME}, "records": CANARY_EMAIL})
    post("profiles: not JSON", "/api/v1/profiles/batch", None, raw=f'{{"source": "crm", "x": "{CANARY_EMAIL}'.encode())

    # Events batch.
    post("events", "/api/v1/events/batch", {"source": "crm", "events": [
        {"profile": {"email": CANARY_EMAIL}, "type": "purchase", "item_id": "sku-1", "price": "9.99"},
        {"profile": {"phone": CANARY_PHONE}, "type": "view", "item_id": "sku-2"},
        {"profile": {"email": bad_email}, "type": "view", "item_id": "sku-1"},
        {"profile": {"email": CANARY_EMAIL}, "type": CANARY_NAME, "item_id": CANARY_EMAIL * 20,
         "occurred_at": CANARY_PHONE, "price": CANARY_PHONE, "name": CANARY_NAME * 30},
        {"profile_id": CANARY_EMAIL, "type": "view", "item_id": "sku-1"},
        CANARY_PHONE,
    ]})
    post("events: wrong types", "/api/v1/events/batch", {"source": "crm", "events": {"email": CANARY_EMAIL}})

    # PATCH corrections.
    etag = api.get(f"/api/v1/profiles/{profile_id}")["ETag"]

    def patch(label, body, if_match=etag):
        response = api.patch(f"/api/v1/profiles/{profile_id}", body, format="json",
                             headers={"If-Match": if_match, "Idempotency-Key": f"canary-{next(keys)}"})
        answers.append((label, response, False))
        return response

    etag = patch("patch", {"attributes": {"nickname": CANARY_NAME + " Jr"},
                           "identifiers": {"phone": "+1 415 555 0132"}})["ETag"]
    patch("patch: invalid email", {"identifiers": {"email": bad_email}})
    patch("patch: held by another profile", {"identifiers": {"email": "other.person@example.org"}})
    patch("patch: scoped kind", {"identifiers": {"crm_id": CANARY_EMAIL}})
    patch("patch: bad attribute name", {"attributes": {CANARY_EMAIL: CANARY_NAME}})
    patch("patch: wrong types", {"attributes": CANARY_NAME, "identifiers": [CANARY_EMAIL]})
    patch("patch: stale", {"attributes": {"nickname": CANARY_NAME}}, if_match='"1"')
    assert other_id != profile_id

    # Lookups (a POST, so nothing personal is in a URL); a found profile is personal data.
    for kind, value in (("email", CANARY_EMAIL), ("phone", CANARY_PHONE)):
        found = post(f"lookup {kind}", "/api/v1/profiles/lookup", {kind: value}, personal=True)
        assert [p["id"] for p in found.json()["results"]] == [profile_id], found.json()
        assert canaries_in(found.content.decode())  # the search sees personal data where it belongs
    post("lookup: two identifiers", "/api/v1/profiles/lookup", person)
    post("lookup: scoped without source", "/api/v1/profiles/lookup", {"crm_id": CANARY_NAME})
    post("lookup: unknown source", "/api/v1/profiles/lookup", {"user_id": CANARY_NAME, "source": CANARY_EMAIL})
    post("lookup: invalid email", "/api/v1/profiles/lookup", {"email": bad_email})
    post("lookup: wrong type", "/api/v1/profiles/lookup", {"email": {"value": CANARY_EMAIL}})

    # Consents batch.
    post("consents", "/api/v1/consents/batch", {"channel": "cmp", "source": "crm", "records": [
        {"profile": {"email": CANARY_EMAIL}, "purpose": "marketing", "granted": True},
        {"profile": {"phone": CANARY_PHONE}, "purpose": "analytics", "granted": True},
        {"profile": {"crm_id": "C-1"}, "purpose": "personalization", "granted": True},
        {"profile": {"email": bad_email}, "purpose": "marketing", "granted": True},
        {"profile": {"email": CANARY_EMAIL}, "purpose": CANARY_NAME, "granted": CANARY_PHONE,
         "notice_version": CANARY_EMAIL, "occurred_at": CANARY_PHONE},
        {"profile": {CANARY_EMAIL: CANARY_NAME}, "purpose": "marketing", "granted": True},
        {"profile_id": CANARY_EMAIL, "purpose": "marketing", "granted": True},
        CANARY_NAME,
    ]})
    post("consents: scoped without source", "/api/v1/consents/batch", {"channel": "cmp", "records": [
        {"profile": {"crm_id": CANARY_EMAIL}, "purpose": "marketing", "granted": True}]})
    post("consents: unknown channel", "/api/v1/consents/batch", {"channel": CANARY_EMAIL, "records": [
        {"profile": {"email": CANARY_EMAIL}, "purpose": "marketing", "granted": True}]})
    post("consents: unknown source", "/api/v1/consents/batch", {"channel": "cmp", "source": CANARY_NAME,
                                                                 "records": [{"profile": person}]})

    # Data subject requests.
    post("dsr access", "/api/v1/dsr", {"type": "access", "identifiers": {"email": CANARY_EMAIL}})
    post("dsr portability", "/api/v1/dsr", {"type": "portability", "identifiers": {"phone": CANARY_PHONE}})
    post("dsr rectification", "/api/v1/dsr", {"type": "rectification", "identifiers": {"email": CANARY_EMAIL},
                                              "changes": {"attributes": {"full_name": CANARY_NAME + "e"}}})
    post("dsr unknown person", "/api/v1/dsr", {"type": "access", "identifiers": {"email": "z" + CANARY_EMAIL}})
    post("dsr: unknown type", "/api/v1/dsr", {"type": CANARY_EMAIL, "identifiers": {"email": CANARY_EMAIL}})
    post("dsr: invalid email", "/api/v1/dsr", {"type": "access", "identifiers": {"email": bad_email}})
    post("dsr: scoped without source", "/api/v1/dsr", {"type": "erasure", "identifiers": {"crm_id": CANARY_NAME}})
    post("dsr: unknown source", "/api/v1/dsr", {"type": "access", "identifiers": {"user_id": CANARY_NAME},
                                                "source": CANARY_EMAIL})
    post("dsr: bad changes", "/api/v1/dsr", {"type": "rectification", "identifiers": {"email": CANARY_EMAIL},
                                             "changes": {"identifiers": {"email": bad_email},
                                                         "attributes": CANARY_NAME}})
    post("dsr: wrong types", "/api/v1/dsr", {"type": "access", "identifiers": CANARY_EMAIL})

    # Segment: identify, track and a batch with malformed messages.
    traits = {"email": CANARY_EMAIL, "phone": CANARY_PHONE, "name": CANARY_NAME, "first_name": "Qvzxyl"}
    post("segment identify", "/v1/identify", {"userId": "seg-user-1", "traits": traits}, client=segment)
    post("segment track", "/v1/track", {"userId": "seg-user-1", "event": "Product Viewed",
                                        "properties": {"product_id": "sku-1", "name": "Kettle"},
                                        "context": {"traits": {"email": CANARY_EMAIL}}}, client=segment)
    post("segment batch", "/v1/batch", {"batch": [
        {"type": "identify", "anonymousId": "anon-1", "traits": traits},
        {"type": "track", "userId": "seg-user-1", "event": "Order Completed",
         "properties": {"products": [{"product_id": "sku-1", "price": 3}]}},
        {"type": "identify", "userId": {"nested": CANARY_NAME}, "traits": {"email": CANARY_EMAIL}},
        {"type": CANARY_NAME, "userId": "seg-user-1", "traits": {"phone": CANARY_PHONE}},
        {"type": "identify", "traits": {"email": bad_email}},
        CANARY_EMAIL,
    ]}, client=segment)
    post("segment: batch not a list", "/v1/batch", {"batch": CANARY_EMAIL}, client=segment)
    post("segment: not JSON", "/v1/identify", None, client=segment,
         raw=f'{{"traits": {{"email": "{CANARY_EMAIL}"'.encode())
    post("segment: unknown write key", "/v1/identify", {"traits": traits}, client=APIClient(),
         HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{CANARY_EMAIL}:".encode()).decode())

    # Now run the published tasks in-process (the DSRs, ...): what they do is recorded too.
    from cdp.celery import app

    ran = 0
    while ran < len(task_messages):
        message = task_messages[ran]
        args, kwargs, _ = message["body"]
        app.tasks[message["headers"]["task"]].apply(args=args, kwargs=kwargs, throw=True)
        ran += 1
    assert any(m["headers"]["task"].startswith("consent.dsr") for m in task_messages), \
        [m["headers"]["task"] for m in task_messages]
    for label in ("dsr access", "dsr portability"):
        request_id = next(r for lbl, r, _ in answers if lbl == label).json()["id"]
        result = api.get(f"/api/v1/dsr/{request_id}").json()
        assert result["status"] == "completed" and result["result"] != {"found": False}, result

    # --- nothing leaked ---------------------------------------------------------------------------
    leaks = []
    for label, response, personal in answers:
        body = response.content.decode(errors="replace")
        if response.status_code >= 400 or not personal:
            leaks += [(f"answer: {label} ({response.status_code})", needle, body[:300])
                      for needle in canaries_in(body)]
    assert any(r.status_code == 400 for _, r, _ in answers) and any(r.status_code == 422 for _, r, _ in answers)

    formatter = JsonFormatter()
    assert every_log_record.records, "no log record was captured"
    for record in every_log_record.records:
        line = formatter.format(record)
        leaks += [(f"log: {record.name}", needle, line[:300]) for needle in canaries_in(line + record.getMessage())]

    assert task_messages, "no task message was published"
    for message in task_messages:
        text = json.dumps(message, default=str)
        leaks += [(f"task message: {message['headers']['task']}", needle, text[:300]) for needle in canaries_in(text)]

    leaks += _database_leaks()
    assert not leaks, "\n".join(f"{where}: {needle!r} in {context!r}" for where, needle, context in leaks)


def _database_leaks() -> list[tuple[str, str, str]]:
    """Every column of every row, binary ones included: a canary there is a plain-text copy."""
    from cdp.core.http.models import IdempotencyRecord
    from cdp.core.models import OutboxMessage
    from cdp.segment.models import IngestionError
    from consent.models import AccessLog, DataSubjectRequest, DsrAuditEntry

    for model in (IdempotencyRecord, OutboxMessage, AccessLog, DataSubjectRequest, DsrAuditEntry, IngestionError):
        assert model.objects.exists(), f"{model.__name__} has no row: the check would prove nothing"
    leaks = []
    for model in apps.get_models():
        fields = [f.attname for f in model._meta.concrete_fields]
        for row in model.objects.values_list(*fields):
            for name, value in zip(fields, row):
                if value is None:
                    continue
                if isinstance(value, (bytes, memoryview)):
                    text = bytes(value).decode("latin-1")
                elif isinstance(value, (dict, list)):
                    text = json.dumps(value, default=str)
                else:
                    text = str(value)
                leaks += [(f"row: {model._meta.label}.{name}", needle, text[:300]) for needle in canaries_in(text)]
    return leaks
