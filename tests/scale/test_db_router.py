"""The router's decisions within one request (no replica needed: it only names aliases)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import transaction

from cdp.core import db_routing
from cdp.core.db_routing import PRIMARY, REPLICA, PrimaryReplicaRouter, Route, lsn_parse
from cdp.models import Profile

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.mark.parametrize(("primary", "replica"), [
    ("sqlite:///x.sqlite3", "postgres://postgres@127.0.0.1:5432/x"),
    ("postgres://postgres@127.0.0.1:5432/x", "sqlite:///x.sqlite3"),
    ("postgres://postgres@127.0.0.1:5432/x", "mysql://x"),
])
def test_a_replica_needs_postgresql_on_both_sides(tmp_path, primary, replica):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update({"TESSERA_VAR_DIR": str(tmp_path), "DATABASE_URL": primary, "DATABASE_REPLICA_URL": replica})
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "DATABASE_REPLICA_URL" in result.stderr
