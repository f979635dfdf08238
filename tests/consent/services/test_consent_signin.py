"""Sign-in links for the preference center: signed, expiring, naming a profile and an address's blind index."""

from __future__ import annotations

import uuid

import pytest
from django.core import mail

from cdp.crypto import blind_index
from cdp.services.resolution import profiles_ingest
from consent.services import consent_set
from consent.services.signin import SignInClaim, demo_sign_in_links, sign_in_request, sign_in_token, sign_in_token_check

pytestmark = pytest.mark.django_db


def test_tokens_are_signed():
    profile_id = uuid.uuid4()
    token = sign_in_token(profile_id, "ab" * 32)
    assert sign_in_token_check(token) == SignInClaim(profile_id, "ab" * 32)
    assert sign_in_token_check(token[:-2] + "xx") is None


def test_a_link_is_mailed_only_to_a_known_address(source_factory):
    [result] = profiles_ingest(source=source_factory("shop"), records=[
        {"external_id": "1", "identifiers": {"email": "known@example.com"}}])
    assert sign_in_request(email="unknown@example.com", base_url="http://testserver") is None
    assert not mail.outbox
    link = sign_in_request(email="Known@Example.com", base_url="http://testserver")
    assert link.startswith("http://testserver/me/") and mail.outbox[0].to == ["Known@Example.com"]
    assert link in mail.outbox[0].body
    claim = sign_in_token_check(link.rstrip("/").rsplit("/", 1)[-1])
    assert claim.profile_id == uuid.UUID(result.profile_id)
    assert claim.address == blind_index(kind="email", namespace="", normalized_value="known@example.com")
    assert "known" not in link  # the address itself is not in the link


def test_demo_links_in_development_only(source_factory, settings):
    [result] = profiles_ingest(source=source_factory("shop"), records=[
        {"external_id": "1", "identifiers": {"email": "demo@example.com"}}])
    consent_set(profile_id=result.profile_id, purpose="analytics", granted=True)
    settings.DEBUG = True
    assert len(demo_sign_in_links(base_url="http://x", count=3)) == 1
    settings.DEBUG = False
    assert demo_sign_in_links(base_url="http://x", count=3) == []
