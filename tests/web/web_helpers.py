"""Helpers and fixtures for the web page tests (imported by name: pytest puts this directory on sys.path).

Customers are made through the ordinary ingestion services; sign-in goes through the
real magic link (consent.services.signin makes it, the page redeems it). Recommendations are
written as a succeeded pipeline run would write them, with explanations built by
personalization.explanations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import UUID

import pytest
from django.test import Client
from django.utils import timezone

PASSWORD = "correct horse battery staple"


@dataclass
class Customer:
    profile_id: UUID
    email: str


def make_customer(source, email: str, *, consents: dict | None = None, index: int = 0) -> Customer:
    from cdp.services.resolution import profiles_ingest
    from consent.services import consent_set

    [result] = profiles_ingest(source=source, records=[
        {"external_id": f"c-{email}", "identifiers": {"email": email}, "attributes": {"country": "GB"}}])
    profile_id = UUID(str(result.profile_id))
    for purpose, granted in (consents or {}).items():
        consent_set(profile_id=profile_id, purpose=purpose, granted=granted)
    return Customer(profile_id, email)


def sign_in(client: Client, profile_id) -> None:
    """Sign a test client in through a real magic link."""
    from consent.services.signin import sign_in_link

    path = link_path(sign_in_link(base_url="http://testserver/", profile_id=profile_id))
    response = client.post(path)
    assert response.status_code == 302, response.content[:500]


def link_path(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


def link_in_mail(body: str) -> str:
    match = re.search(r"https?://\S+/me/signin/\S+/", body)
    assert match, "no sign-in link in the e-mail"
    return link_path(match.group(0))


def recommendations_write(profile_id, *, items: list[tuple[str, str]], own: list[tuple[str, str]],
                          segment: dict | None = None, sources=("shop",)) -> None:
    """Recommendations as a succeeded run stores them, explanations built by the real builder."""
    from personalization.explanations import PersonContext, Scored, explanation_build
    from personalization.models import PipelineRun, Recommendation, RunStatus, Stage

    run = PipelineRun.objects.create(status=RunStatus.SUCCEEDED, stage=Stage.DONE, active=None,
                                     finished_at=timezone.now(), model_version="test-1")
    person = PersonContext(item_actions={item_id: {"purchase"} for item_id, _ in own},
                           item_sources={item_id: set(sources) for item_id, _ in own}, sources=set(sources),
                           segment=segment)
    titles = dict(items) | dict(own)
    rows = []
    for rank, (item_id, title) in enumerate(items, start=1):
        parts = {"collaborative": 0.6, "content": 0.3} | ({"segment_popularity": 0.1} if segment else {})
        scored = Scored(item_id, sum(parts.values()), parts,
                        because=[(own_id, 1 / len(own), 0.6 / len(own)) for own_id, _ in own],
                        attributes=[("category", "kitchen", 0.3)], segment_used=bool(segment))
        rows.append(Recommendation(run=run, profile_id=profile_id, rank=rank, item_id=item_id, title=title,
                                   score=scored.score, model_version="test-1", created_at=timezone.now(),
                                   explanation=explanation_build(scored, person=person, titles=titles,
                                                                 model_version="test-1")))
    Recommendation.objects.bulk_create(rows)


@pytest.fixture
def shop(source_factory):
    return source_factory("shop", trust=80)


@pytest.fixture
def ada(shop):
    return make_customer(shop, "ada@example.com", consents={"personalization": True, "analytics": True})


@pytest.fixture
def bob(shop):
    return make_customer(shop, "bob@example.com", consents={"personalization": True, "marketing": True})


@pytest.fixture
def staff_user(db):
    from cdp.staff import staff_create

    def make(username: str, role: str | None):
        if role is None:
            from django.contrib.auth import get_user_model

            return get_user_model().objects.create_user(username=username, password=PASSWORD, is_staff=True)
        return staff_create(username=username, role=role, password=PASSWORD)

    return make


@pytest.fixture
def officer(staff_user):
    return staff_user("officer", "compliance")


@pytest.fixture
def operator(staff_user):
    return staff_user("opsy", "operator")


@pytest.fixture
def officer_client(officer):
    client = Client()
    client.force_login(officer)
    return client


@pytest.fixture
def operator_client(operator):
    client = Client()
    client.force_login(operator)
    return client


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttle counters live in the cache: every test starts from none."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
