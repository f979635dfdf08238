"""Reads that tolerate lag go to a streaming replica; everything else to the primary.

With `DATABASE_REPLICA_URL` set, settings add a `replica` database and this router.
Nothing reads the replica unless the view serving the request says it may
(`replica_read_methods` on a view class): the change feed, lookups, profile,
recommendation and segment-member reads, the consent export. Everything else -- web
pages, Celery tasks, writes -- reads and writes the primary.

Read-your-writes, three ways:
  * a request that writes (any method but the view's declared read methods, or any ORM
    write inside it) reads the primary from then on, and so does everything inside a
    transaction on the primary;
  * a response to a request that may have written carries `Tessera-Position`, the
    primary's WAL position after it. A client that sends it back as
    `Tessera-Read-After` is served by the replica only once the replica has replayed
    past it (pg_last_wal_replay_lsn() >= the position), else by the primary;
  * a replica further behind than TESSERA_REPLICA_MAX_LAG_SECONDS, or unreachable,
    serves nobody: the primary answers.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connections
from django.http import JsonResponse

from cdp.core.http.problems import PROBLEM_CONTENT_TYPE, problem

logger = logging.getLogger(__name__)

PRIMARY = "default"
REPLICA = "replica"
POSITION_HEADER = "Tessera-Position"
READ_AFTER_HEADER = "HTTP_TESSERA_READ_AFTER"
_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Where the replica stands: its replay position (its own WAL position when it is a
# primary itself) and how many seconds of the primary's transactions it has not replayed.
_REPLICA_STATE_SQL = """
SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text,
       CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END
"""


@dataclass
class Route:
    replica: bool = False  # this request may read the replica
    wrote: bool = False


_route: contextvars.ContextVar[Route | None] = contextvars.ContextVar("tessera_db_route", default=None)


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


def lsn_parse(text: str) -> int | None:
    match = _LSN.fullmatch(text.strip())
    return (int(match[1], 16) << 32) + int(match[2], 16) if match else None


def primary_position() -> str:
    # The insert position, not pg_current_wal_lsn() (written so far): with asynchronous
    # commit, a committed transaction's commit record may not be written yet.
    with connections[PRIMARY].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
        return cursor.fetchone()[0]


def replica_serves(read_after: int | None) -> bool:
    """True when the replica answers, has replayed past `read_after` (if given) and is
    within the allowed lag."""
    try:
        with connections[REPLICA].cursor() as cursor:
            cursor.execute(_REPLICA_STATE_SQL)
            replayed, lag = cursor.fetchone()
    except DatabaseError:
        logger.warning("replica_unavailable")
        return False
    if replayed is None or float(lag) > settings.TESSERA_REPLICA_MAX_LAG_SECONDS:
        return False
    return read_after is None or lsn_parse(replayed) >= read_after


class PrimaryReplicaRouter:
    """Django database router (settings.DATABASE_ROUTERS when a replica is configured)."""

    def db_for_read(self, model, **hints):
        route = _route.get()
        if route is None or not route.replica or route.wrote or connections[PRIMARY].in_atomic_block:
            return PRIMARY
        return REPLICA

    def db_for_write(self, model, **hints):
        route = _route.get()
        if route is not None:
            route.wrote = True  # the request reads its own writes from now on
        return PRIMARY

    def allow_relation(self, obj1, obj2, **hints):
        return True  # one database, two copies

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == PRIMARY


class ReplicaRoutingMiddleware:
    """Decides per request whether the replica may serve its reads, and hands clients the
    position to read after (see the module docstring)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not replica_configured():
            return self.get_response(request)
        read_after = request.META.get(READ_AFTER_HEADER)
        position = None
        if read_after is not None:
            position = lsn_parse(read_after)
            if position is None:
                body = problem(400, "invalid_read_after", "Invalid Tessera-Read-After",
                               "Tessera-Read-After must be a position as sent in Tessera-Position, such as 0/16B3748.")
                return JsonResponse(body, status=400, content_type=PROBLEM_CONTENT_TYPE)
        route = Route()
        token = _route.set(route)
        request.tessera_read_after = position
        try:
            response = self.get_response(request)
        finally:
            _route.reset(token)
        if route.wrote or request.method not in _SAFE_METHODS:
            with contextlib.suppress(DatabaseError):  # the primary away: a 503 needs no position
                response[POSITION_HEADER] = primary_position()
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        route = _route.get()
        if route is None:
            return None
        view_class = getattr(view_func, "cls", None) or getattr(view_func, "view_class", None)
        methods = getattr(view_class, "replica_read_methods", frozenset())
        if request.method in methods:
            route.replica = replica_serves(request.tessera_read_after)
        return None
