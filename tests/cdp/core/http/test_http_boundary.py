"""The key boundary of the HTTP layer (cdp.core.http.permissions): the profile domain
registers what it knows at start-up; without it a bound key gets nothing."""

from __future__ import annotations

import pytest

from cdp.api.services.api_keys import api_key_create
from cdp.core.errors import Unprocessable
from cdp.core.http import permissions
from cdp.core.http.errors import Forbidden
from cdp.selectors import profiles_contributed_by_source, source_by_key
from cdp.services.sources import source_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop():
    source, _ = source_create(key="shop", name="Shop", kind="first_party", trust=50)
    return source


def test_the_profile_domain_registers_its_boundary_at_start_up():
    registered = permissions._registered()
    assert registered.source_by_key is source_by_key
    assert registered.profiles_of_source is profiles_contributed_by_source


def test_without_a_registered_boundary_a_bound_key_is_refused(shop, monkeypatch):
    bound, _ = api_key_create(name="bound", scopes=["profiles:read"], source_key="shop")
    unbound, _ = api_key_create(name="unbound", scopes=["profiles:read"])
    monkeypatch.setattr(permissions, "_boundary", None)
    with pytest.raises(RuntimeError):
        permissions.profiles_visible_to_key(api_key=bound, profile_ids=[])
    with pytest.raises(RuntimeError):
        permissions.source_for_write(api_key=bound, source_key="shop")
    # An unbound key's boundary needs nothing from the domain: everyone.
    assert permissions.key_boundary(unbound) is None


def test_a_bound_key_writes_only_as_its_source_whether_or_not_the_other_exists(shop):
    source_create(key="crm", name="CRM", kind="first_party", trust=50)
    bound, _ = api_key_create(name="bound", scopes=["profiles:write"], source_key="shop")
    assert permissions.source_for_write(api_key=bound, source_key="shop") == shop
    for other in ("crm", "nobody"):
        with pytest.raises(Forbidden) as refused:
            permissions.source_for_write(api_key=bound, source_key=other)
        assert refused.value.code == "source_not_allowed"
    unbound, _ = api_key_create(name="unbound", scopes=["profiles:write"])
    with pytest.raises(Unprocessable) as unknown:
        permissions.source_for_write(api_key=unbound, source_key="nobody")
    assert unknown.value.code == "unknown_source"
