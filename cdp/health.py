"""Liveness, readiness and metrics endpoints (no auth; nothing personal in them)."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from cdp.core.broker import broker_reachable
from cdp.core.cache import ResilientRedisCache
from cdp.core.observability import metrics_payload


@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request):
    checks = {"database": _database_status(), "migrations": _migrations_status(), "broker": _broker_status(),
              "cache": _cache_status()}
    failed = [name for name, status in checks.items() if status not in ("ok", "in-process")]
    body = {"status": "ok" if not failed else "unavailable", **checks}
    if failed:
        body["failed"] = failed
    return JsonResponse(body, status=200 if not failed else 503)


@require_GET
def metrics(request):
    payload, content_type = metrics_payload()
    return HttpResponse(payload, content_type=content_type)


def _database_status() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception:
        return "unreachable"


def _migrations_status() -> str:
    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception:
        return "unknown"
    return "ok" if not pending else "pending"


def _broker_status() -> str:
    if settings.TASKS_IN_PROCESS:
        return "in-process"
    return "ok" if broker_reachable(timeout=settings.TESSERA_SERVICE_TIMEOUT_SECONDS) else "unreachable"


def _cache_status() -> str:
    """Redis for throttle counters; while it is away requests still answer (per-process
    counts), but the instance is degraded and says so."""
    backend = caches["default"]
    if not isinstance(backend, ResilientRedisCache):
        return "in-process"
    return "ok" if backend.ping() else "unreachable"
