"""The router's decisions within one request (no replica needed: it only names aliases)."""

from __future__ import annotations

import pytest
from django.db import transaction

from cdp.core import db_routing
from cdp.core.db_routing import PRIMARY, REPLICA, PrimaryReplicaRouter, Route, lsn_parse
from cdp.models import Profile


@pytest.fixture
def route():
    route = Route(replica=True)
    token = db_routing._route.set(route)
    yield route
    db_routing._route.reset(token)


def test_outside_a_request_everything_reads_the_primary():
    assert PrimaryReplicaRouter().db_for_read(Profile) == PRIMARY


def test_a_request_that_wrote_reads_the_primary_afterwards(route):
    router = PrimaryReplicaRouter()
    assert router.db_for_read(Profile) == REPLICA
    assert router.db_for_write(Profile) == PRIMARY
    assert router.db_for_read(Profile) == PRIMARY


def test_a_request_not_allowed_the_replica_reads_the_primary(route):
    route.replica = False
    assert PrimaryReplicaRouter().db_for_read(Profile) == PRIMARY


@pytest.mark.django_db(transaction=True)  # no test transaction around it
def test_reads_inside_a_transaction_on_the_primary_stay_there(route):
    with transaction.atomic():
        assert PrimaryReplicaRouter().db_for_read(Profile) == PRIMARY
    assert PrimaryReplicaRouter().db_for_read(Profile) == REPLICA


def test_only_migrations_of_the_primary_run():
    router = PrimaryReplicaRouter()
    assert router.allow_migrate(PRIMARY, "cdp") is True
    assert router.allow_migrate(REPLICA, "cdp") is False


@pytest.mark.parametrize(("text", "value"), [
    ("0/16B3748", 0x16B3748), ("1/0", 1 << 32), ("FFFFFFFF/FFFFFFFF", 2**64 - 1),
    ("0/", None), ("16B3748", None), ("0/1/2", None), ("x/1", None), ("100000000/0", None)])
def test_positions_parse_as_postgresql_writes_them(text, value):
    assert lsn_parse(text) == value
