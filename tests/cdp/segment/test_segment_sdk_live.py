"""The real Segment Python SDK against a live Tessera server on 127.0.0.1 (random port).

pytest-django's live_server serves the same test database from a thread; the tests use
transactional_db so the server sees the rows the test commits, and the other way round.
"""

from __future__ import annotations

import pytest
import segment.analytics as analytics
from segment.analytics import Client
from segment.analytics import request as sdk_request

from cdp.models import Event, Identity, Profile, ProfileStatus
from cdp.segment.models import IngestionError
from cdp.selectors import profile_unified_view
from cdp.services.sources import source_create

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def write_key(transactional_db):
    _source, key = source_create(key="shop-web", name="Shop web", kind="first_party", trust=50)
    yield key
    # The SDK keeps one HTTP session per process: closing its kept-alive connections lets
    # the live server's request threads finish now, not during interpreter shutdown.
    sdk_request._session.close()


@pytest.fixture
def sdk(live_server, write_key):
    """The module-level SDK as integrators configure it, sending each call at once."""
    errors = []
    analytics.write_key = write_key
    analytics.host = live_server.url
    analytics.sync_mode = True
    analytics.max_retries = 0
    analytics.on_error = lambda error, batch: errors.append(error)
    analytics.default_client = None
    yield analytics
    analytics.default_client = None
    analytics.sync_mode = False
    assert errors == []


def live_profiles():
    return Profile.objects.filter(status=ProfileStatus.ACTIVE)


def test_identify_track_order_and_alias_through_the_sdk(sdk):
    sdk.track(anonymous_id="anon-42", event="Product Viewed", properties={"product_id": "sku-1", "price": 19.99})
    sdk.identify("user-42", {"email": "ada@example.com", "firstName": "Ada", "plan": "pro"})
    assert live_profiles().count() == 2  # the visitor is not yet known to be the user

    sdk.track("user-42", "Order Completed", {"order_id": "o-1", "products": [
        {"product_id": "sku-1", "quantity": 2, "price": 19.99},
        {"product_id": "sku-2", "price": 5},
    ]}, message_id="order-o-1")
    sdk.alias("anon-42", "user-42")

    [profile] = live_profiles()
    view = profile_unified_view(profile_id=profile.id)
    assert view["identifiers"] == {"anonymous_id": ["anon-42"], "email": ["ada@example.com"],
                                   "user_id": ["user-42"]}
    assert view["attributes"]["first_name"]["value"] == "Ada"
    assert Identity.objects.get(kind="user_id").namespace == "shop-web"
    events = sorted(Event.objects.filter(profile=profile).values_list("type", "item_id", "quantity", "price"))
    assert [(t, i, q, str(p)) for t, i, q, p in events] == [
        ("purchase", "sku-1", 2, "19.99"), ("purchase", "sku-2", 1, "5.00"), ("view", "sku-1", None, "19.99")]
    assert set(Event.objects.filter(type="purchase").values_list("message_id", flat=True)) == {
        "order-o-1:0", "order-o-1:1"}

    # The SDK re-sending the same order (a retry after a lost answer) stores nothing new.
    sdk.track("user-42", "Order Completed", {"products": [{"product_id": "sku-1", "quantity": 2}]},
              message_id="order-o-1")
    assert Event.objects.filter(type="purchase").count() == 2


def test_a_batching_gzip_client_flushes_one_batch(live_server, write_key):
    errors = []
    client = Client(write_key, host=live_server.url, gzip=True, upload_size=100, max_retries=0,
                    on_error=lambda error, batch: errors.append(error))
    try:
        client.identify("u-1", {"email": "grace@example.com"}, anonymous_id="a-1")
        for n in range(30):
            client.page("u-1", name=f"Page {n}", anonymous_id="a-1")
        client.track("u-1", "Product Added", {"sku": "sku-9", "quantity": 1, "price": "3.50"}, anonymous_id="a-1")
        client.flush()
    finally:
        client.shutdown()
    assert errors == []
    [profile] = live_profiles()
    assert Event.objects.filter(profile=profile, name="Page Viewed").count() == 30
    assert Event.objects.get(type="add_to_cart").item_id == "sku-9"


def test_a_wrong_write_key_is_refused(live_server, write_key):
    errors = []
    client = Client("wk_not_a_key", host=live_server.url, sync_mode=True, max_retries=0,
                    on_error=lambda error, batch: errors.append(error))
    with pytest.raises(Exception) as caught:
        client.track("u-1", "Clicked")
    assert getattr(caught.value, "status", None) == 401
    assert not Event.objects.exists() and not IngestionError.objects.exists()
