"""Identity poisoning through a public write key, and sign-in through a poisoned identifier.

The attacker holds only the write key of a web source (browser SDKs put it in the page)
and knows a customer's email address. Everything goes through the real endpoints: the
Segment API with the write key, the preference center's sign-in page, the magic link.
"""

from __future__ import annotations

import base64
import json
import re

import pytest
from django.core import mail
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client

from cdp.crypto import blind_index
from cdp.models import Assurance, Identity, Merge, MergeConflict, Profile, Source
from cdp.services import identity_rules
from cdp.services.merges import merge_undo
from cdp.services.resolution import profiles_ingest
from cdp.services.sources import source_assurance_change, source_create
from consent.services.signin import sign_in_addresses, sign_in_link

pytestmark = pytest.mark.django_db

VICTIM = "victim.k2@example.com"
ATTACKER = "attacker@evil.test"


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()  # the sign-in page's throttle counters
    yield
    cache.clear()


@pytest.fixture
def crm():
    source, _ = source_create(key="crm", name="CRM", kind="first_party", trust=90)
    return source


@pytest.fixture
def web():
    source, write_key = source_create(key="web", name="Website", kind="first_party", trust=50,
                                      assurance=Assurance.CLIENT)
    source.write_key = write_key
    return source


@pytest.fixture
def victim(crm):
    [result] = profiles_ingest(source=crm, records=[
        {"external_id": "v-1", "identifiers": {"email": VICTIM}, "attributes": {"first_name": "Vera"}}])
    return result.profile_id


def segment(write_key: str, path: str, body: dict):
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    response = Client().post(path, data=json.dumps(body), content_type="application/json",
                             HTTP_AUTHORIZATION=auth)
    assert response.status_code == 200, response.content[:300]
    return response


def identify(source, anonymous_id: str, **traits):
    return segment(source.write_key, "/v1/identify", {"anonymousId": anonymous_id, "traits": traits})


def owner_of(kind: str, value: str, namespace: str = ""):
    index = blind_index(kind=kind, namespace=namespace, normalized_value=value)
    return Identity.objects.filter(kind=kind, namespace=namespace, blind_index=index).values_list(
        "profile_id", flat=True).first()


def ask_for_link(email: str):
    response = Client().post("/me/signin/", {"email": email})
    assert response.status_code == 302
    return [message for message in mail.outbox if message.to == [email]]


def link_path(body: str) -> str:
    return re.search(r"https?://[^/]+(/me/signin/\S+/)", body).group(1)


def test_preference_center_takeover_through_a_public_write_key(victim, web):
    identify(web, "a1", email=VICTIM)
    identify(web, "a1", email=ATTACKER)

    assert str(owner_of("anonymous_id", "a1")) == victim  # linking its visitor to the person is allowed
    assert owner_of("email", ATTACKER) is None  # ... attaching another address to them is not
    held = MergeConflict.objects.get(reason=identity_rules.UNTRUSTED_CONTACT)
    assert str(held.profile_id) == victim and held.record_id is not None  # held for review, record kept
    assert ask_for_link(ATTACKER) == []  # no link opens the victim's preference center
    [message] = ask_for_link(VICTIM)
    assert Client().post(link_path(message.body)).status_code == 302  # the victim still signs in


def test_public_write_key_cannot_add_a_phone_then_an_email_to_a_profile_with_only_a_phone(crm, web):
    [result] = profiles_ingest(source=crm, records=[{"external_id": "p-1", "identifiers": {"phone": "+447911123456"}}])
    identify(web, "a5", phone="+447911123456")
    identify(web, "a5", email=ATTACKER)

    assert owner_of("email", ATTACKER) is None
    assert str(owner_of("anonymous_id", "a5")) == result.profile_id
    assert ask_for_link(ATTACKER) == []


def test_public_write_key_cannot_merge_its_profile_into_a_known_customer(victim, web):
    identify(web, "a2", email=ATTACKER)  # the attacker's own profile: allowed
    attacker_profile = owner_of("email", ATTACKER)
    identify(web, "a2", email=VICTIM)  # now claims the victim's address for that visitor

    assert Profile.objects.get(pk=victim).status == "active"
    assert Profile.objects.get(pk=attacker_profile).status == "active"  # no merge either way
    conflict = MergeConflict.objects.get(reason=identity_rules.UNTRUSTED_MERGE)
    assert str(conflict.profile_id) == str(attacker_profile)  # the record stays with its own visitor
    assert conflict.other_profiles == [victim]
    [message] = ask_for_link(ATTACKER)  # the attacker can open only their own profile
    client = Client()
    assert client.post(link_path(message.body)).status_code == 302
    assert client.session["web.customer"] == str(attacker_profile)


def test_alias_through_a_public_write_key_does_not_merge_two_known_people(victim, web):
    identify(web, "a3", email=VICTIM)
    segment(web.write_key, "/v1/identify", {"userId": "u-9", "traits": {"email": ATTACKER}})
    segment(web.write_key, "/v1/alias", {"previousId": "a3", "userId": "u-9"})

    assert Profile.objects.get(pk=victim).status == "active"
    assert owner_of("email", ATTACKER) not in (None, victim)
    [message] = ask_for_link(ATTACKER)
    assert client_opens([message]) != victim


def client_opens(messages) -> str:
    client = Client()
    client.post(link_path(messages[-1].body))
    return client.session.get("web.customer")


def test_an_asserted_source_still_links_and_merges_as_before(crm, victim):
    other, _ = source_create(key="shop", name="Shop", kind="first_party", trust=60)
    [second] = profiles_ingest(source=other, records=[{"external_id": "s-1", "identifiers": {"phone": "+33612345678"}}])
    [merged] = profiles_ingest(source=other, records=[
        {"external_id": "s-2", "identifiers": {"email": VICTIM, "phone": "+33612345678"}}])
    assert merged.status == "merged" and merged.profile_id == victim
    assert Profile.objects.get(pk=second.profile_id).status == "merged"


def test_a_client_source_may_give_a_new_visitor_an_address_who_can_then_sign_in(web):
    identify(web, "a4", email="new.person@example.com")
    profile_id = owner_of("email", "new.person@example.com")
    identity = Identity.objects.get(kind="email", profile_id=profile_id)
    assert (identity.source_id, identity.assurance) == (web.id, Assurance.CLIENT)
    [message] = ask_for_link("new.person@example.com")  # the only address the profile has
    assert client_opens([message]) == str(profile_id)


def test_a_more_trusted_source_asserting_an_address_takes_over_its_provenance(web, crm):
    identify(web, "a6", email="later.crm@example.com")
    profile_id = owner_of("email", "later.crm@example.com")
    [result] = profiles_ingest(source=crm, records=[
        {"external_id": "c-6", "identifiers": {"email": "later.crm@example.com"}}])
    assert result.profile_id == str(profile_id)
    identity = Identity.objects.get(kind="email", profile_id=profile_id)
    assert (identity.source_id, identity.assurance) == (crm.id, Assurance.ASSERTED)


def test_lowering_a_sources_assurance_lowers_what_it_asserted(crm, victim):
    source_assurance_change(source=crm, assurance=Assurance.CLIENT)
    assert Identity.objects.get(profile_id=victim, kind="email").assurance == Assurance.CLIENT
    source_assurance_change(source=crm, assurance=Assurance.VERIFIED)  # raising changes only what comes next
    assert Identity.objects.get(profile_id=victim, kind="email").assurance == Assurance.CLIENT


def test_a_link_stops_working_when_its_address_is_detached(crm, victim):
    shop, _ = source_create(key="shop", name="Shop", kind="first_party", trust=60)
    [second] = profiles_ingest(source=shop, records=[{"external_id": "s-1", "identifiers": {"email": "b@example.com"}}])
    profiles_ingest(source=crm, records=[{"external_id": "v-1", "identifiers": {"email": VICTIM,
                                                                              "phone": "+4915123456789"}}])
    [merged] = profiles_ingest(source=shop, records=[{"external_id": "s-1", "identifiers": {
        "email": "b@example.com", "phone": "+4915123456789"}}])
    assert merged.status == "merged" and merged.profile_id == victim
    through_b = blind_index(kind="email", namespace="", normalized_value="b@example.com")
    path = link_path(sign_in_link(base_url="http://testserver/", profile_id=victim, address=through_b))
    merge_undo(merge_id=Merge.objects.get(survivor_id=victim).id)  # b@ goes back to its own profile

    response = Client().post(path)
    assert response.status_code == 410 and b"no longer works" in response.content
    assert str(owner_of("email", "b@example.com")) == second.profile_id


def test_a_link_stops_working_when_its_profile_is_merged_away(crm, victim):
    [other] = profiles_ingest(source=crm, records=[{"external_id": "o-1", "identifiers": {"email": "o@example.com"}}])
    path = link_path(sign_in_link(base_url="http://testserver/", profile_id=other.profile_id))
    shop, _ = source_create(key="shop", name="Shop", kind="first_party", trust=60)
    profiles_ingest(source=shop, records=[{"external_id": "m", "identifiers": {"email": VICTIM}},
                                          {"external_id": "m2", "identifiers": {"email": "o@example.com",
                                                                               "phone": "+14155552671"}},
                                          {"external_id": "m3", "identifiers": {"email": VICTIM,
                                                                               "phone": "+14155552671"}}])
    assert Profile.objects.get(pk=other.profile_id).status == "merged"
    response = Client().post(path)
    assert response.status_code == 410 and UsedSignInLink_count() == 0


def UsedSignInLink_count() -> int:  # noqa: N802 - reads as the model it counts
    from web.models import UsedSignInLink

    return UsedSignInLink.objects.count()


def test_a_link_names_the_address_not_just_the_profile(victim, web):
    identify(web, "a7", email=VICTIM)
    addresses = sign_in_addresses(victim)
    assert addresses == [blind_index(kind="email", namespace="", normalized_value=VICTIM)]


def test_create_source_takes_an_assurance(capsys):
    call_command("create_source", "app", "--name", "Mobile app", "--kind", "first_party", "--trust", "40",
                 "--assurance", "client")
    assert Source.objects.get(key="app").assurance == Assurance.CLIENT
    call_command("create_source", "erp", "--name", "ERP", "--kind", "first_party", "--trust", "40")
    assert Source.objects.get(key="erp").assurance == Assurance.ASSERTED


@pytest.fixture
def operator_client():
    from cdp.staff import OPERATOR, staff_create

    client = Client()
    client.force_login(staff_create(username="op", role=OPERATOR, password="x" * 20))
    return client


def test_an_operator_can_apply_a_held_address_which_keeps_its_client_provenance(victim, web, operator_client):
    identify(web, "a8", email=VICTIM)
    identify(web, "a8", email="second.address@example.com")
    held = MergeConflict.objects.get(reason=identity_rules.UNTRUSTED_CONTACT)
    page = operator_client.get("/ops/merges/")
    assert b"Apply the held link" in page.content

    response = operator_client.post(f"/ops/merges/conflicts/{held.id}/apply/")

    assert response.status_code == 302
    held.refresh_from_db()
    assert held.status == "resolved"
    identity = Identity.objects.get(profile_id=victim, kind="email", source=web)
    assert identity.assurance == Assurance.CLIENT
    assert ask_for_link("second.address@example.com") == []  # attached, but still opens nothing


def test_an_operator_can_apply_a_held_merge(victim, web, operator_client):
    identify(web, "a2", email=ATTACKER)
    identify(web, "a2", email=VICTIM)
    held = MergeConflict.objects.get(reason=identity_rules.UNTRUSTED_MERGE)
    operator_client.post(f"/ops/merges/conflicts/{held.id}/apply/")
    assert Profile.objects.get(pk=victim).status == "active"
    assert str(owner_of("email", ATTACKER)) == victim  # the older profile survived


def test_a_protection_refusal_cannot_be_applied(crm, operator_client):
    profiles_ingest(source=crm, records=[
        {"external_id": "x", "identifiers": {"crm_id": "C1", "email": "x@example.com"}},
        {"external_id": "y", "identifiers": {"crm_id": "C2"}}])
    profiles_ingest(source=crm, records=[{"external_id": "z", "identifiers": {"crm_id": "C2",
                                                                            "email": "x@example.com"}}])
    held = MergeConflict.objects.get(reason="conflicting_source_ids")
    operator_client.post(f"/ops/merges/conflicts/{held.id}/apply/")
    held.refresh_from_db()
    assert held.status == "open"


def test_an_operator_lowering_a_sources_assurance_in_the_admin_lowers_its_identities(crm, victim):
    from cdp.staff import OPERATOR, staff_create

    client = Client()
    client.force_login(staff_create(username="op2", role=OPERATOR, password="x" * 20))
    response = client.post(f"/admin/cdp/source/{crm.pk}/change/", {
        "name": crm.name, "kind": crm.kind, "trust": crm.trust, "assurance": "client"})
    assert response.status_code == 302, response.content[:500]
    assert Source.objects.get(pk=crm.pk).assurance == Assurance.CLIENT
    assert Identity.objects.get(profile_id=victim, kind="email").assurance == Assurance.CLIENT
