"""Operator actions outside consent reach the access log: key creation and revocation,
unmerges, viewing a decrypted ingestion error."""

from __future__ import annotations

import pytest

from cdp.api.services.api_keys import api_key_create, api_key_revoke
from cdp.models import Merge
from cdp.services.merges import merge_undo
from cdp.services.resolution import profiles_ingest
from consent.models import AccessLog

pytestmark = pytest.mark.django_db


def actions() -> list[tuple[str, str]]:
    return list(AccessLog.objects.filter(kind="operator_action").values_list("actor", "purpose"))


def test_api_key_creation_and_revocation_are_logged():
    key, _ = api_key_create(name="CRM sync", scopes=["profiles:read"], actor="staff:7")
    api_key_revoke(api_key_id=key.id, actor="staff:7")
    api_key_revoke(api_key_id=key.id, actor="staff:7")  # a second revocation changes nothing
    assert actions() == [("staff:7", "api_key.created"), ("staff:7", "api_key.revoked")]
    row = AccessLog.objects.get(purpose="api_key.created")
    assert row.detail["api_key_id"] == str(key.id)


def test_an_unmerge_is_logged_with_both_profiles(source_factory):
    shop = source_factory("shop")
    profiles_ingest(source=shop, records=[
        {"external_id": "1", "identifiers": {"email": "a@example.com"}},
        {"external_id": "2", "identifiers": {"phone": "+442079460018"}},
        {"external_id": "3", "identifiers": {"email": "a@example.com", "phone": "+442079460018"}},
    ])
    merge = Merge.objects.get()
    merge_undo(merge_id=merge.id, actor="api_key:abc")
    row = AccessLog.objects.get(purpose="merge.undone")
    assert row.actor == "api_key:abc" and row.profile_id == merge.survivor_id
    assert row.detail == {"merge_id": str(merge.id), "restored_profile_id": str(merge.absorbed_id)}


def test_a_profile_read_with_sec_gpc_records_a_sale_sharing_opt_out(source_factory):
    from rest_framework.test import APIClient

    from consent.models import ConsentEvent

    shop = source_factory("shop")
    [result] = profiles_ingest(source=shop, records=[{"external_id": "1", "identifiers": {"email": "g@example.com"}}])
    _, key = api_key_create(name="reader", scopes=["profiles:read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get(f"/api/v1/profiles/{result.profile_id}").status_code == 200
    assert not ConsentEvent.objects.filter(channel="gpc").exists()
    assert client.get(f"/api/v1/profiles/{result.profile_id}", HTTP_SEC_GPC="1").status_code == 200
    event = ConsentEvent.objects.get(channel="gpc")
    assert (str(event.profile_id), event.purpose, event.granted) == (result.profile_id, "sale_sharing", False)
