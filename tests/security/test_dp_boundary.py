"""The differential-privacy boundary: no exact figure a release protects can be recovered
from anything that leaves the operator boundary.

The attacker holds a `segments:read` API key, or a compliance officer's or an operator's
staff log-in, or reads the logs (which leave the host). A real pipeline run (the real
features, segmentation, memberships and OpenDP releases; the recommender model is the
test stand-in) over a shop whose exact population figures are distinctive numbers; every
attack looks for those numbers where the attacker can see.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "personalization"))
from personalization_helpers import fake_model_fit, shop_population  # noqa: E402

from consent.models import AccessKind, AccessLog  # noqa: E402
from personalization.models import DpRelease, PipelineRun, Segment, SegmentMembership  # noqa: E402
from personalization.services import pipeline  # noqa: E402

pytestmark = pytest.mark.django_db

PEOPLE = 97  # 77 allow analytics, 72 personalization: numbers no date, id or timing on a page collides with
_STANDARD = set(logging.LogRecord("x", logging.INFO, __file__, 1, "", (), None).__dict__) | {"message", "asctime"}


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def ran(db, monkeypatch, caplog):
    """A succeeded run; the exact figures its releases protect, and every log record it wrote."""
    monkeypatch.setattr("personalization.services.recommendations.model_fit", fake_model_fit)
    shop = shop_population(people=PEOPLE)
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    run = pipeline.pipeline_run_create(params={"chunk_size": 40, "k": 3})
    pipeline.pipeline_run_sync(run_id=run.id)
    run = PipelineRun.objects.get(id=run.id)
    assert run.status == "succeeded", run.errors
    exact = {
        "profiles": len(shop.profile_ids),
        "analytics": len(shop.analytics),
        "personalization": len(shop.personalization),
        "segmented": SegmentMembership.objects.count(),
    }
    assert exact == {"profiles": 97, "analytics": 77, "personalization": 72, "segmented": 77}
    return {"run": run, "shop": shop, "exact": exact, "records": list(caplog.records)}


def numbers_in(text: str) -> set[int]:
    """Every whole number written in the text, thousands separators allowed."""
    # Not part of a decimal, a word or an id (a release key such as `run:77:segment_definition`
    # names a run, and a run's id may equal a count by chance), nor a percentage (a chart's
    # axis tick "72%" is a share, not a count of people).
    pattern = r"(?<![\w.:])(?:\d{1,3}(?:,\d{3})+|\d+)(?!\w|[.,]\d|:|%)"
    return {int(n.replace(",", "")) for n in re.findall(pattern, text)}


def forbidden(ran) -> set[int]:
    """The exact figures, less any that a noisy release happens to equal (noise can be 0)."""
    released = set()
    for values in DpRelease.objects.values_list("values", flat=True):
        released |= numbers_in(json.dumps(values))
        released |= {round(v) for v in _numbers(values)}
    return set(ran["exact"].values()) - released


def _numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield value


def api(*scopes: str) -> APIClient:
    from cdp.api.services.api_keys import api_key_create

    _, plaintext = api_key_create(name="attacker", scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


def staff_client(role: str) -> Client:
    from cdp.staff import staff_create

    client = Client()
    client.force_login(staff_create(username=f"{role}-user", role=role, password="a long enough password 1"))
    return client


def leaked(text: str, ran) -> set[int]:
    found = numbers_in(text) & forbidden(ran)
    for n in found:  # shown when the test fails: where the figure is
        for m in re.finditer(rf"(?<![\w.:]){n}(?!\w|[.,]\d|:)", text):
            print("found", n, "in", repr(text[max(0, m.start() - 200):m.end() + 60]))
    return found


# --- the logs ---------------------------------------------------------------------------------------


def test_logs_of_a_run_carry_no_exact_population(ran):
    """Logs leave the host: a run's log lines may name ids, stages and timings, never how many people."""
    seen = set()
    for record in ran["records"]:
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        seen |= numbers_in(record.getMessage()) | numbers_in(json.dumps(extras, default=str))
    assert not seen & forbidden(ran), f"exact counts in the logs: {sorted(seen & forbidden(ran))}"


# --- the segments API ---------------------------------------------------------------------------------


def test_a_segments_read_key_cannot_page_through_members(ran):
    """The DP size would be pointless if the same key could count the members one by one."""
    segment = Segment.objects.filter(memberships__isnull=False).first()
    response = api("segments:read").get(f"/api/v1/segments/{segment.id}/members?purpose=analytics")
    assert response.status_code == 403, response.content[:300]
    assert response.json()["code"] == "missing_scope" and response.json()["missing_scope"] == "segments:members"


def test_a_segments_read_key_sees_dp_statistics_only(ran):
    body = api("segments:read").get("/api/v1/segments").json()
    assert body["results"]
    for segment in body["results"]:
        assert set(segment) == {"id", "name", "segmentation", "statistics"}
        for statistic in segment["statistics"].values():
            assert {"value", "error_95", "epsilon", "mechanism", "noise_scale", "released_at"} <= set(statistic)
            assert statistic["mechanism"]
        segment["statistics"] = None
    assert not leaked(json.dumps(body), ran)


def test_asking_again_returns_the_same_noise_so_it_cannot_be_averaged_away(ran):
    from personalization.models import Segmentation
    from personalization.privacy import segment_sizes_release

    client = api("segments:read")
    first = client.get("/api/v1/segments").json()
    assert all(client.get("/api/v1/segments").json() == first for _ in range(3))
    segmentation = Segmentation.objects.get(run=ran["run"])
    stored = DpRelease.objects.get(segmentation=segmentation, statistic="segment_sizes")
    again = segment_sizes_release(segmentation=segmentation)  # the pipeline asking the same question again
    assert again.id == stored.id and again.values == stored.values


def test_member_listings_need_their_own_scope_honour_the_purpose_and_are_logged(ran):
    client = api("segments:members")
    segment = Segment.objects.filter(memberships__isnull=False).order_by("index").first()
    listed = []
    cursor = ""
    while True:
        page = client.get(f"/api/v1/segments/{segment.id}/members?limit=5{cursor}")
        assert page.status_code == 200, page.content[:300]
        listed += [m["profile_id"] for m in page.json()["results"]]
        if not page.json()["next_cursor"]:
            break
        cursor = f"&cursor={page.json()['next_cursor']}"
    # The purpose defaults to marketing, which nobody in this shop allows: nobody is listed.
    assert listed == []
    analytics = [m["profile_id"] for m in client.get(
        f"/api/v1/segments/{segment.id}/members?purpose=analytics&limit=100").json()["results"]]
    members = {str(p) for p in segment.memberships.values_list("profile_id", flat=True)}
    assert set(analytics) == members and analytics
    logged = set(AccessLog.objects.filter(kind=AccessKind.READ, purpose="analytics")
                 .values_list("profile_id", flat=True))
    assert {str(p) for p in logged} == members
    entry = AccessLog.objects.filter(kind=AccessKind.READ, purpose="analytics").first()
    assert entry.fields == ["segment_membership"] and entry.actor.startswith("api_key:")


# --- the pages --------------------------------------------------------------------------------------


def test_the_operator_dashboard_shows_no_exact_count(ran):
    html = staff_client("operator").get("/ops/").content.decode()
    assert "differentially private" in html  # the releases are there...
    assert not leaked(html, ran), f"exact counts on /ops/: {sorted(leaked(html, ran))}"  # ...and nothing exact


def test_the_compliance_console_shows_no_exact_count(ran):
    from personalization.privacy import consent_rates_release

    consent_rates_release()
    officer = staff_client("compliance")
    for page in ("/compliance/", "/compliance/budget/"):
        html = officer.get(page).content.decode()
        assert not leaked(html, ran), f"exact counts on {page}: {sorted(leaked(html, ran))}"


def test_the_admin_keeps_exact_counts_internal_and_apart_from_releases(ran):
    from django.contrib.auth import get_user_model

    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw-long-enough-1"))
    run_page = admin.get(f"/admin/personalization/pipelinerun/{ran['run'].id}/change/").content.decode()
    # Operators inside the boundary keep their counts, marked internal...
    assert "Internal" in run_page and str(ran["exact"]["profiles"]) in run_page
    # ...with no release on the same page to subtract them from.
    assert "noise" not in run_page.lower() and "differentially private" not in run_page.lower()
    for release in DpRelease.objects.all():
        page = admin.get(f"/admin/personalization/dprelease/{release.id}/change/").content.decode()
        assert not leaked(page, ran), f"exact counts beside release {release.statistic}"
    listing = admin.get("/admin/personalization/segmentation/").content.decode()
    assert not leaked(listing, ran)
