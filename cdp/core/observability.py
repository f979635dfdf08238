"""Structured logs, request/task metrics and the Prometheus exposition.

Logs are JSON lines. The access log records the route pattern (never the raw path or
query string, so ids in URLs stay out of logs too), status and latency, nothing personal.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "tessera_http_requests_total", "HTTP requests answered.", ["method", "route", "status"], registry=REGISTRY
)
HTTP_LATENCY = Histogram(
    "tessera_http_request_seconds", "HTTP request latency.", ["method", "route"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TASKS = Counter("tessera_tasks_total", "Celery tasks finished.", ["task", "state"], registry=REGISTRY)
TASK_LATENCY = Histogram(
    "tessera_task_seconds", "Celery task run time.", ["task"], registry=REGISTRY,
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900),
)

access_log = logging.getLogger("tessera.access")

_STANDARD_RECORD_KEYS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_RECORD_KEYS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            # Exception type and location only: exception messages can carry input values.
            exc_type = record.exc_info[0]
            entry["exception"] = exc_type.__name__ if exc_type else None
        return json.dumps(entry, default=str)


def route_of(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is not None and match.route:
        return "/" + match.route.lstrip("/")
    return "unmatched"


class RequestMetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        request.request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        route = route_of(request)
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        HTTP_LATENCY.labels(request.method, route).observe(elapsed)
        response["X-Request-ID"] = request.request_id
        access_log.info(
            "request",
            extra={
                "request_id": request.request_id,
                "method": request.method,
                "route": route,
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )
        return response


def metrics_payload() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
