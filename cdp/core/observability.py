"""Structured logs, request/task metrics and the Prometheus exposition.

Logs are JSON lines. The access log records the route pattern (never the raw path or
query string, so ids in URLs stay out of logs too), status and latency, nothing personal.

Some paths carry a secret (the magic sign-in link /me/signin/<token>/). Django logs raw
paths on its own (CSRF refusals, 4xx/5xx in django.request), so every log record made in
the process has the secret segment of such a path replaced when it is created, whoever
logs it and whichever handler writes it; pages under those paths send no Referer
onwards; metrics label requests by route pattern and by a fixed set of methods.
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.config
import re
import threading
import time
import uuid
from urllib.parse import quote

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

RECOMMENDATIONS_REFRESH_LAG = Histogram(
    "tessera_recommendations_refresh_lag_seconds",
    "From the commit of a person's new events (or consent grant) to their refreshed recommendations.",
    registry=REGISTRY, buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

access_log = logging.getLogger("tessera.access")

# Anything else (an invented method) is counted as "other": label values stay a fixed set.
KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})

# --- paths that carry a secret ----------------------------------------------------------------

REDACTED = "[redacted]"
# Strict-origin: the origin only, never the path; "no-referrer" would make browsers send
# `Origin: null` on the sign-in form's POST, which CSRF protection rightly refuses.
PRIVATE_PAGE_REFERRER_POLICY = "strict-origin"
# A slash as it may appear in a logged or quoted URL: plain or percent-encoded.
_SLASH = r"(?:/|%2[fF])"
# The secret runs to the next slash, query, fragment, quote or blank.
_SEGMENT_AFTER_PREFIX = r"[^/?#\s'\"<>]+"

# Shorter segments are not secrets worth scrubbing from every line of a request's logs.
_MIN_REQUEST_SECRET = 8

_secret_prefixes: list[str] = []
_secret_lock = threading.Lock()
_secret_in_text: re.Pattern | None = None
_secret_path: re.Pattern | None = None
# The secret of the request being answered, also redacted where it appears on its own
# (an exception message quoting a view argument), in whatever logs during the request.
_request_secrets: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("request_secrets", default=())


def register_secret_path(template: str) -> None:
    """Declare a URL whose `{...}` segment is a secret, e.g. "/me/signin/{token}/"."""
    prefix = template.split("{", 1)[0]
    if not prefix.startswith("/") or not prefix.endswith("/") or prefix == template:
        raise ValueError("a secret path template is /fixed/part/{secret}...")
    global _secret_in_text, _secret_path
    with _secret_lock:
        if prefix in _secret_prefixes:
            return
        _secret_prefixes.append(prefix)
        alternatives = "|".join(_SLASH.join(re.escape(part) for part in p.split("/")) for p in _secret_prefixes)
        _secret_in_text = re.compile(f"({alternatives}){_SEGMENT_AFTER_PREFIX}")
        _secret_path = re.compile("|".join(re.escape(p) for p in _secret_prefixes))


def is_secret_path(path: str) -> bool:
    return _secret_path is not None and _secret_path.match(path) is not None


def _secrets_of(path: str) -> tuple[str, ...]:
    if _secret_in_text is None:
        return ()
    found = []
    for match in _secret_in_text.finditer(path):
        secret = match.group(0)[len(match.group(1)):]
        if len(secret) >= _MIN_REQUEST_SECRET:
            found += {secret, quote(secret, safe="")}
    return tuple(found)


def redact(text: str) -> str:
    """The text with the secret segment of every registered secret path replaced, and the
    current request's secret wherever it appears."""
    if _secret_in_text is None:
        return text
    text = _secret_in_text.sub(lambda m: m.group(1) + REDACTED, text)
    for secret in _request_secrets.get():
        text = text.replace(secret, REDACTED)
    return text


def redact_record(record: logging.LogRecord) -> None:
    """Redact a record's message (with its arguments, whatever their type) and traceback in place."""
    if _secret_in_text is None:
        return
    try:
        message = record.getMessage()
    except Exception:  # a malformed logging call: the handler reports it, as logging does
        message = None
    if message is not None:
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
    if record.exc_info and not record.exc_text:
        # Exception messages can quote a path (Resolver404 does): the traceback text is
        # rendered now, redacted, and formatters use it as it is.
        text = logging.Formatter().formatException(record.exc_info)
        cleaned = redact(text)
        if cleaned != text:
            record.exc_text = cleaned
    if isinstance(record.stack_info, str):
        record.stack_info = redact(record.stack_info)


class RedactSecretsFilter(logging.Filter):
    """For handlers: the same redaction, for records made before the factory was installed."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def _redacting_factory(base):
    def factory(*args, **kwargs):
        record = base(*args, **kwargs)
        redact_record(record)
        return record

    factory.redacting = True
    return factory


def logging_configure(config: dict) -> None:
    """settings.LOGGING_CONFIG: every record any logger makes is redacted, then dictConfig."""
    current = logging.getLogRecordFactory()
    if not getattr(current, "redacting", False):
        logging.setLogRecordFactory(_redacting_factory(current))
    logging.config.dictConfig(config)

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
        # Extras are written with str() (Django passes the request, whose repr is its path).
        return redact(json.dumps(entry, default=str))


def method_label(method: str | None) -> str:
    return method if method in KNOWN_METHODS else "other"


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
        method = method_label(request.method)
        HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
        HTTP_LATENCY.labels(method, route).observe(elapsed)
        response["X-Request-ID"] = request.request_id
        access_log.info(
            "request",
            extra={
                "request_id": request.request_id,
                "method": method,
                "route": route,
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )
        return response


class SecretPathMiddleware:
    """Outermost: while a request to a secret path is answered, its secret is redacted from
    every log record; whatever the answer (a page, a CSRF refusal, a 404 or 500), nothing it
    loads or links to learns the URL (set here, over the site-wide Referrer-Policy)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not is_secret_path(request.path_info):
            return self.get_response(request)
        token = _request_secrets.set(_secrets_of(request.path_info))
        try:
            response = self.get_response(request)
        finally:
            _request_secrets.reset(token)
        response["Referrer-Policy"] = PRIVATE_PAGE_REFERRER_POLICY
        return response


def metrics_payload() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
