"""Customers' magic-link sign-in: one use, a short life, clear refusals, no personal data out."""

# ruff: noqa: F811 - pytest fixtures are imported from web_helpers and named as arguments

from __future__ import annotations

import logging

import pytest
from django.core import mail
from django.test import Client, override_settings
from web_helpers import _fresh_cache, ada, bob, link_in_mail, link_path, shop, sign_in  # noqa: F401

from consent.services.signin import MAX_AGE_SECONDS, demo_sign_in_links, sign_in_link
from web.models import UsedSignInLink
from web.signin import SESSION_KEY

pytestmark = pytest.mark.django_db


def request_link(client: Client, email: str, **extra):
    return client.post("/me/signin/", {"email": email}, **extra)


def test_a_known_address_gets_a_link_by_email_and_the_link_signs_in_once(ada, caplog):
    client = Client()
    caplog.set_level(logging.DEBUG)

    response = request_link(client, ada.email)

    assert response.status_code == 302
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [ada.email]
    path = link_in_mail(mail.outbox[0].body)
    assert ada.email not in path and "ada" not in path  # no personal data in the link
    confirm = client.get(path)
    assert confirm.status_code == 200 and b"Sign in" in confirm.content
    assert not UsedSignInLink.objects.exists()  # opening the link (a mail scanner) uses nothing up
    signed_in = client.post(path)
    assert signed_in.status_code == 302 and signed_in["Location"] == "/me/"
    assert client.session[SESSION_KEY] == str(ada.profile_id)
    assert client.get("/me/").status_code == 200
    assert ada.email not in caplog.text  # nothing personal in any log line


def test_an_unknown_address_gets_the_same_answer_and_no_mail(db):
    client = Client()
    response = request_link(client, "nobody@example.com")
    assert response.status_code == 302
    page = client.get(response["Location"])
    assert b"If this address belongs to a customer" in page.content
    assert mail.outbox == []


def test_a_used_link_is_refused_with_a_clear_message(ada):
    path = link_path(sign_in_link(base_url="http://testserver/", profile_id=ada.profile_id))
    assert Client().post(path).status_code == 302

    for method in ("get", "post"):
        other = Client()
        response = getattr(other, method)(path)
        assert response.status_code == 410
        assert b"already used" in response.content
        assert SESSION_KEY not in other.session


def test_an_expired_link_is_refused_with_a_clear_message(ada, monkeypatch):
    path = link_path(sign_in_link(base_url="http://testserver/", profile_id=ada.profile_id))
    import time

    later = time.time() + MAX_AGE_SECONDS + 60
    monkeypatch.setattr("django.core.signing.time.time", lambda: later)
    client = Client()

    for method in ("get", "post"):
        response = getattr(client, method)(path)
        assert response.status_code == 410
        assert b"has expired" in response.content
    assert SESSION_KEY not in client.session


def test_a_tampered_link_signs_nobody_in(ada, bob):
    path = link_path(sign_in_link(base_url="http://testserver/", profile_id=ada.profile_id))
    token = path.split("/")[3]
    payload, timestamp, signature = token.split(":")
    bobs = link_path(sign_in_link(base_url="http://testserver/", profile_id=bob.profile_id)).split("/")[3]
    forged = [f"{bobs.split(':')[0]}:{timestamp}:{signature}",      # bob's id with ada's signature
              f"{payload}:{timestamp}:{signature[:-2]}xx",          # a changed signature
              "not-a-token", f"{payload}:{timestamp}"]
    for token in forged:
        client = Client()
        response = client.post(f"/me/signin/{token}/")
        assert response.status_code == 400, token
        assert b"not valid" in response.content
        assert SESSION_KEY not in client.session


def test_a_link_for_an_erased_person_is_refused(ada):
    from cdp.models import Profile, ProfileStatus

    path = link_path(sign_in_link(base_url="http://testserver/", profile_id=ada.profile_id))
    Profile.objects.filter(id=ada.profile_id).update(status=ProfileStatus.ERASED)
    response = Client().post(path)
    assert response.status_code == 410 and b"no longer exists" in response.content


def test_signing_in_starts_a_new_session(ada):
    client = Client()
    client.get("/me/signin/")
    client.cookies["sessionid"] = "attacker-chosen"
    sign_in(client, ada.profile_id)
    assert client.cookies["sessionid"].value != "attacker-chosen"


def test_sign_out_ends_the_customer_session(ada):
    client = Client()
    sign_in(client, ada.profile_id)
    assert client.post("/me/signout/").status_code == 302
    assert client.get("/me/")["Location"] == "/me/signin/"


def test_link_requests_are_throttled_per_address_and_per_mailbox(ada):
    client = Client()
    for _ in range(5):
        request_link(client, ada.email)
    assert len(mail.outbox) == 3  # a mailbox gets at most three links in 15 minutes
    for _ in range(5):
        request_link(client, "someone@example.com")
    response = request_link(client, "else@example.com")
    assert response.status_code == 429
    assert b"Too many sign-in requests" in response.content
    # Another network is not affected.
    assert request_link(Client(REMOTE_ADDR="10.9.8.7"), "else@example.com").status_code == 302


def test_the_sign_in_form_needs_its_csrf_token(ada):
    client = Client(enforce_csrf_checks=True)
    assert request_link(client, ada.email).status_code == 403
    assert mail.outbox == []


@override_settings(DEBUG=True)
def test_demo_links_open_the_preference_center_in_development(ada):
    links = demo_sign_in_links(base_url="http://testserver", count=3)
    assert links
    client = Client()
    assert client.get(link_path(links[0])).status_code == 200
    assert client.post(link_path(links[0])).status_code == 302
    page = Client().get("/me/demo/")
    assert page.status_code == 200 and b"Sign in as Demo customer 1" in page.content
    assert ada.email.encode() not in page.content


def test_no_demo_links_without_debug(ada):
    assert demo_sign_in_links(base_url="http://testserver", count=3) == []
    assert Client().get("/me/demo/").status_code == 404
