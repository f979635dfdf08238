"""Schemathesis against our own OpenAPI schema, driven through WSGI (no server).

Every operation of the served schema is generated (positive and negative data), sent to
the Django application with a key holding every scope (Segment's endpoints with a source's
write key), and its answer checked: no 5xx, the body fits the documented schema, and the
status is one the operation documents. Real ids (profiles, a merge, a consent event, a
DSR, a webhook, a segment) are mixed into path parameters so the 200 paths are reached,
not only 404s.

Schemathesis' phases all run: explicit examples, coverage (boundary values, missing or
wrong auth, unsupported methods and content types) and fuzzing (25 examples an operation,
positive and negative data). Hooks mix real values into what it generates (known source
keys, a valid webhook URL, a known person for a DSR, `If-Match: *`), always beside the
generated value, never instead of it. A guard at the end fails the run if it proved
nothing: every operation must answer something other than 401, and at least three
quarters of them a success.

Nothing is excluded. Hypothesis runs derandomized and without an example database, so a
CI run is reproducible and writes nothing into the work tree.
"""

from __future__ import annotations

import base64
from collections import Counter

import hypothesis
import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import strategies as st
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from cdp.core.http.scopes import SCOPES

MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
# (method, path) -> Counter of statuses answered, to prove the run reached real code paths.
ANSWERS: dict[tuple[str, str], Counter] = {}

schema = schemathesis.pytest.from_fixture("conformance_schema")


class World:
    """Ids of real rows, mixed into generated path parameters."""

    def __init__(self):
        self.ids: dict[str, list[str]] = {}
        self.bearer = ""
        self.write_key = ""


@pytest.fixture
def world(db, settings, make_key):
    from cdp.services.sources import source_create

    settings.TESSERA_API_RATE = "1000000/s"  # 429 is documented, but would hide every other path
    settings.TESSERA_WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    world = World()
    _, world.write_key = source_create(key="shop", name="Shop", kind="first_party", trust=80)
    source_create(key="crm", name="CRM", kind="first_party", trust=60)
    _, world.bearer = make_key(*SCOPES)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {world.bearer}")

    def ok(response, status=200):
        assert response.status_code == status, response.content[:1000]
        return response.json()

    people = 12  # segmentation needs at least 10 profiles allowing analytics
    records = [{"external_id": f"c{i}", "identifiers": {"email": f"person{i}@example.org", "crm_id": f"C{i}"},
                "attributes": {"first_name": f"Name{i}", "country": "GB"}} for i in range(people)]
    results = ok(client.post("/api/v1/profiles/batch", {"source": "crm", "records": records}, format="json"))
    profiles = [r["profile_id"] for r in results["results"]]
    # The shop knows person 0 by phone, then links the phone with person 1's email: a merge.
    ok(client.post("/api/v1/profiles/batch", {"source": "shop", "records": [
        {"external_id": "s0", "identifiers": {"phone": "+442071838750", "user_id": "u0"}}]}, format="json"))
    ok(client.post("/api/v1/profiles/batch", {"source": "shop", "records": [
        {"external_id": "s0", "identifiers": {"phone": "+442071838750", "email": "person1@example.org",
                                              "user_id": "u0"}}]}, format="json"))
    ok(client.post("/api/v1/items/batch", {"items": [
        {"id": f"sku-{i}", "title": f"Thing {i}", "category": "kitchen"} for i in range(5)]}, format="json"))
    ok(client.post("/api/v1/events/batch", {"source": "crm", "events": [
        {"profile_id": profiles[i % people], "type": "purchase", "item_id": f"sku-{i % 5}", "quantity": 1 + i % 3,
         "price": f"{5 + 7 * i}.00", "occurred_at": f"2026-0{1 + i % 9}-{1 + i % 27:02d}T10:00:00Z"}
        for i in range(4 * people)]}, format="json"))
    for pid in profiles[:people - 1]:
        ok(client.put(f"/api/v1/profiles/{pid}/consents", {"channel": "api", "consents": [
            {"purpose": "personalization", "granted": True}, {"purpose": "analytics", "granted": True},
            {"purpose": "marketing", "granted": True}]}, format="json"))
    events = ok(client.get("/api/v1/consents/events", {"profile": profiles[0]}))["results"]
    dsr = ok(client.post("/api/v1/dsr", {"type": "access", "identifiers": {"email": "person2@example.org"}},
                         format="json"), 202)
    webhooks = [ok(client.post("/api/v1/webhooks", {"url": f"https://hooks.example.org/tessera/{i}",
                                                    "events": ["profile.created"]}, format="json"), 201)["id"]
                for i in range(2)]
    from cdp.models import Merge

    world.ids = {
        "profile_id": [str(p) for p in profiles],
        "merge_id": [str(m) for m in Merge.objects.values_list("id", flat=True)],
        "event_id": [e["id"] for e in events],
        "profile_id+event_id": [{"profile_id": profiles[0], "event_id": e["id"]} for e in events],
        "request_id": [dsr["id"]],
        "webhook_id": webhooks[:1],
        "webhook_id:DELETE": webhooks[1:],  # deleting it must leave one to rotate
        "segment_id": _segments(),
    }
    ANSWERS.clear()
    yield world
    _assert_real_paths_were_reached()


def _assert_real_paths_were_reached():
    """A run where every answer is 401 or 404 (a broken key, no data) would pass every
    check and prove nothing: every operation must have answered something else than 401,
    and most of them a success."""
    if not ANSWERS:
        return  # the test itself failed before sending anything
    summary = {f"{m} {p}": dict(sorted(c.items())) for (m, p), c in sorted(ANSWERS.items())}
    only_unauthenticated = [op for op, statuses in summary.items() if set(statuses) <= {401}]
    assert not only_unauthenticated, only_unauthenticated
    succeeded = [op for op, statuses in summary.items() if any(200 <= s < 300 for s in statuses)]
    assert len(succeeded) >= 0.75 * len(summary), summary


def _segments() -> list[str]:
    """Run the personalization pipeline when it is installed, so segments exist."""
    try:
        from personalization.models import Segment
        from personalization.services import pipeline
    except ImportError:
        return []
    run = pipeline.pipeline_run_create(params={"chunk_size": 50, "k_max": 3})
    pipeline.pipeline_run_sync(run_id=run.id)
    return [str(s) for s in Segment.objects.values_list("id", flat=True)]


@pytest.fixture
def conformance_schema(request, world):
    from cdp.wsgi import application

    if not hasattr(request.node, "_nodeid"):
        # Schemathesis' lazy loader renames the test per operation through `node._nodeid`,
        # which pytest 9.2 no longer has; give it the attribute it reads.
        request.node._nodeid = request.node.nodeid

    # As Django's test client does: the WSGI handler would otherwise close the connection
    # after each request, and with it the test's transaction (on PostgreSQL).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    request.addfinalizer(lambda: (signals.request_started.connect(close_old_connections),
                                  signals.request_finished.connect(close_old_connections)))
    loaded = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)

    @loaded.hook
    def flatmap_path_parameters(context, path_parameters):
        # Either what Schemathesis generated (mostly unknown ids: 404) or a real id.
        method = context.operation.method.upper()
        known = {name: world.ids.get(f"{name}:{method}") or world.ids[name]
                 for name in path_parameters or () if world.ids.get(name)}
        if not known:
            return st.just(path_parameters)
        real = st.fixed_dictionaries({name: st.sampled_from(values) for name, values in known.items()})
        if "profile_id" in known and "event_id" in known:  # a receipt: the event must be the profile's
            real = st.sampled_from(world.ids["profile_id+event_id"])
        return st.one_of(st.just(path_parameters), real.map(lambda chosen: {**path_parameters, **chosen}))

    @loaded.hook
    def flatmap_body(context, body):
        # Either the generated body or one whose free-form fields name real things: a known
        # source (else 422), a valid webhook URL and event (else 400), a known person (DSR),
        # the current notice version (consents), so the success paths are exercised too.
        if not isinstance(body, dict):
            return st.just(body)
        repaired = st.fixed_dictionaries({}).map(lambda _: dict(body))
        if "source" in body:
            repaired = st.tuples(repaired, st.sampled_from(["shop", "crm"])).map(lambda t: {**t[0], "source": t[1]})
        if "url" in body:
            repaired = st.tuples(repaired, st.integers(0, 10**6)).map(
                lambda t: {**t[0], "url": f"https://hooks.example.org/generated/{t[1]}", "events": ["profile.merged"]})
        if isinstance(body.get("identifiers"), dict) and "type" in body:  # a DSR
            repaired = st.tuples(repaired, st.integers(0, 11)).map(
                lambda t: {**t[0], "identifiers": {"email": f"person{t[1]}@example.org"}})
        if isinstance(body.get("consents"), list):
            repaired = repaired.map(lambda b: {**b, "consents": [
                {k: v for k, v in c.items() if k != "notice_version"} if isinstance(c, dict) else c
                for c in b["consents"]]})
        return st.one_of(st.just(body), repaired)

    @loaded.hook
    def flatmap_headers(context, headers):
        # Either the generated If-Match (an unknown version: 412) or `*`, so corrections apply.
        if isinstance(headers, dict) and "If-Match" in headers:
            return st.one_of(st.just(headers), st.just({**headers, "If-Match": "*"}))
        return st.just(headers)

    return loaded


@schema.parametrize()
@hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                     suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_to_the_schema(case, world):
    if case.path.startswith("/v1/"):
        credentials = base64.b64encode(f"{world.write_key}:".encode()).decode()
        headers = {"Authorization": f"Basic {credentials}"}
    else:
        headers = {"Authorization": f"Bearer {world.bearer}"}
    response = case.call(headers=headers)
    if case.method.upper() == case.operation.method.upper():  # not an unsupported-method probe
        ANSWERS.setdefault((case.method.upper(), case.path), Counter())[response.status_code] += 1
    case.validate_response(response, checks=CHECKS, headers=headers)
