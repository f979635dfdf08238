"""Tessera settings: every value comes from the environment (see .env.example).

`DEBUG` unset means development: SQLite under var/, tasks in-process, generated
development keys. `DEBUG=false` means production: every key, `SECRET_KEY` and
`ALLOWED_HOSTS` must be set, or start-up stops with one sentence naming what is missing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import dj_database_url
from celery.schedules import crontab

from cdp.core.errors import ConfigurationError
from cdp.core.keys import KEY_VARIABLES, load_keys
from cdp.env import env_bool, env_float, env_int, env_list, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("TESSERA_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", True)
PRODUCTION = not DEBUG

_required_in_production = ("SECRET_KEY", "ALLOWED_HOSTS", *KEY_VARIABLES)
_missing = [name for name in _required_in_production if env_str(name) is None]
if PRODUCTION and _missing:
    raise ConfigurationError(
        f"Production mode (DEBUG=false) needs these environment variables set: {', '.join(_missing)}."
    )

SECRET_KEY = env_str("SECRET_KEY") or "django-insecure-development-only-" + "x" * 32
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")


INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files: /api/docs/ works offline
    "cdp.core",
    "cdp.core.http",  # API keys, idempotency records and the HTTP layer every API builds on
    "cdp",
    "consent",
    "personalization",
    "campaigns",  # experiments and bandits over consented people (issue 18)
    "cdp.segment",
    "cdp.api",
    "cdp.webhooks",
    "web",  # preference center (/me/), compliance console (/compliance/), ops dashboard (/ops/)
]

MIDDLEWARE = [
    "cdp.core.observability.SecretPathMiddleware",  # first: a magic link's token is in no log line
    "cdp.core.observability.RequestMetricsMiddleware",
    "cdp.core.outbox.OutboxWakeMiddleware",  # a request's outbox wake-ups: once, after its response
    "cdp.core.http.problems.UnavailableMiddleware",  # the database away: 503 with Retry-After, never a 500
    "cdp.core.db_routing.ReplicaRoutingMiddleware",  # lag-tolerant reads to the replica, if one is set
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "web.timezones.StaffTimezoneMiddleware",  # the staff pages in the viewer's chosen time zone
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Innermost, so the middleware above adds its headers to the answer it makes: every
    # error under /api/ is problem+json, for unmatched paths too.
    "cdp.core.http.problems.ApiProblemMiddleware",
]

ROOT_URLCONF = "cdp.urls"
WSGI_APPLICATION = "cdp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database_from_env(variable: str = "DATABASE_URL") -> dict | None:
    default_sqlite = f"sqlite:///{VAR_DIR / 'tessera.sqlite3'}" if variable == "DATABASE_URL" else None
    url = env_url(variable, schemes={"sqlite", "postgres", "postgresql", "pgsql"}, default=default_sqlite)
    if url is None:
        return None
    page_cost = env_float("DATABASE_RANDOM_PAGE_COST", 1.1, minimum=0)  # PostgreSQL only, checked always
    pool = env_bool("DATABASE_POOL", True)  # PostgreSQL only
    pool_size = env_int("DATABASE_POOL_MAX_SIZE", 10, minimum=1)
    pool_timeout = env_float("DATABASE_POOL_TIMEOUT", 3.0, minimum=0.1)
    try:
        config = dj_database_url.parse(url, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60))
    except Exception:  # dj-database-url raises several types for a bad URL
        raise ConfigurationError(f"{variable} could not be parsed as a database URL.") from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        if config["NAME"] != ":memory:":
            Path(config["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        config["CONN_MAX_AGE"] = 0
        config["OPTIONS"] = {
            # WAL lets readers run beside the single writer; IMMEDIATE takes the write
            # lock at BEGIN so two writers queue instead of failing on upgrade.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
    else:
        # Server-side binding lets psycopg cache query conversion; client-side binding
        # re-parses every large bulk INSERT in Python.
        options = config.setdefault("OPTIONS", {})
        options["server_side_binding"] = True
        # The planner's default random_page_cost (4) prices an index probe for spinning
        # disks: a batch's `= ANY(2,000 blind indexes)` lookup was planned as a (parallel)
        # whole-table scan of 100k+ identities, read again by every batch. 1.1 is the usual
        # value for SSDs and for tables that live in cache; 0 keeps the server's.
        if page_cost:
            options["options"] = f"{options.get('options', '')} -c random_page_cost={page_cost:g}".strip()
        config["CONN_HEALTH_CHECKS"] = True  # with the pool: each connection is checked when taken
        if pool:
            # One pool per process (Django's, psycopg_pool): a thread takes a connection for a
            # request and gives it back, so servers whose threads come and go (runserver) hold
            # at most max_size, not one per thread ever started. Waiting longer than `timeout`
            # for one (the database away) answers 503.
            options["pool"] = {"min_size": 1, "max_size": pool_size, "timeout": pool_timeout}
            config["CONN_MAX_AGE"] = 0
    return config


DATABASES = {"default": _database_from_env()}
# A streaming replica of the primary: reads that tolerate lag go there (cdp.core.db_routing).
_replica = _database_from_env("DATABASE_REPLICA_URL")
if _replica is not None:
    if _replica["ENGINE"] != "django.db.backends.postgresql" or DATABASES["default"]["ENGINE"] != _replica["ENGINE"]:
        raise ConfigurationError("DATABASE_REPLICA_URL needs PostgreSQL, as does DATABASE_URL.")
    _replica["OPTIONS"]["connect_timeout"] = env_int("DATABASE_REPLICA_CONNECT_TIMEOUT", 2, minimum=1)
    _replica["TEST"] = {"MIRROR": "default"}  # tests read the primary through the alias
    DATABASES["replica"] = _replica
    DATABASE_ROUTERS = ["cdp.core.db_routing.PrimaryReplicaRouter"]
# A replica further behind than this serves no reads until it catches up.
TESSERA_REPLICA_MAX_LAG_SECONDS = env_float("TESSERA_REPLICA_MAX_LAG_SECONDS", 10.0, minimum=0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"

# --- Security -------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Request bodies: the batch endpoints check their own limits and answer 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("TESSERA_MAX_BODY_BYTES", 2 * 1024 * 1024, minimum=1024)
# Segment API: a gzip body may inflate to at most this many bytes (zip bombs stop here).
TESSERA_SEGMENT_MAX_BODY_BYTES = env_int("TESSERA_SEGMENT_MAX_BODY_BYTES", 4 * 1024 * 1024, minimum=1024)

# --- Web pages and e-mail (magic links) ---------------------------------------------------
# Staff (compliance officers, operators) sign in here; customers sign in by magic link.
LOGIN_URL = "/staff/login/"
# Every staff password check (/staff/login/, /admin/login/, any later path) goes through
# this backend, which holds the log-in throttle: one count and one lock for all of them.
AUTHENTICATION_BACKENDS = ["web.staff.ThrottledModelBackend"]
# Development writes e-mails (sign-in links) as files under var/mail, so no personal data
# reaches a log or a real mailbox; production sends through SMTP.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend" if DEBUG
                        else "django.core.mail.backends.smtp.EmailBackend")
EMAIL_FILE_PATH = VAR_DIR / "mail"
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Tessera <no-reply@localhost>")

# The organisation responsible for the data (the controller): named with its contact details in
# consent receipts and in the customer's readable export. Unset details are left out (empty in
# receipts), never replaced by made-up ones; set at least name, address and e-mail in production.
TESSERA_CONTROLLER_NAME = env_str("TESSERA_CONTROLLER_NAME")
TESSERA_CONTROLLER_ADDRESS = (env_str("TESSERA_CONTROLLER_ADDRESS") or "").replace("\\n", "\n") or None
TESSERA_CONTROLLER_EMAIL = env_str("TESSERA_CONTROLLER_EMAIL")
TESSERA_CONTROLLER_PHONE = env_str("TESSERA_CONTROLLER_PHONE")
TESSERA_CONTROLLER_CONTACT = env_str("TESSERA_CONTROLLER_CONTACT")
TESSERA_PRIVACY_POLICY_URL = env_str("TESSERA_PRIVACY_POLICY_URL")

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", schemes={"redis", "rediss", "amqp", "amqps", "pyamqp"})
TASKS_IN_PROCESS = CELERY_BROKER_URL is None
# Per-person refresh after events (personalization.services.realtime_pending): without a
# broker, in the ingesting process after the response is sent, only when this is on (the
# refresh's CPU is then the web process's: README "Real-time recommendations").
TESSERA_REALTIME_IN_PROCESS = env_bool("TESSERA_REALTIME_IN_PROCESS", False)
# /ops/ alerts on a run's served lists (personalization.services.recommendation_quality):
# catalogue coverage below, Gini of exposure or popularity miscalibration above, a gap in
# coverage between segments above, or any figure moving by more than the drift share
# (relative to the previous run's).
TESSERA_QUALITY_MIN_COVERAGE = env_float("TESSERA_QUALITY_MIN_COVERAGE", 0.10, minimum=0.0)
TESSERA_QUALITY_MAX_GINI = env_float("TESSERA_QUALITY_MAX_GINI", 0.95, minimum=0.0)
TESSERA_QUALITY_MAX_MISCALIBRATION = env_float("TESSERA_QUALITY_MAX_MISCALIBRATION", 0.30, minimum=0.0)
TESSERA_QUALITY_MAX_SEGMENT_GAP = env_float("TESSERA_QUALITY_MAX_SEGMENT_GAP", 0.50, minimum=0.0)
TESSERA_QUALITY_MAX_DRIFT = env_float("TESSERA_QUALITY_MAX_DRIFT", 0.25, minimum=0.0)
# Off: new events refresh nobody between pipeline runs (a personalization grant still does).
TESSERA_REALTIME_REFRESH = env_bool("TESSERA_REALTIME_REFRESH", True)
# Events of one person arriving within this window (any requests) make one refresh.
TESSERA_REALTIME_WINDOW_MS = env_int("TESSERA_REALTIME_WINDOW_MS", 100, minimum=0)
CELERY_RESULT_BACKEND = env_url(
    "CELERY_RESULT_BACKEND", schemes={"redis", "rediss", "rpc"},
    default=CELERY_BROKER_URL if CELERY_BROKER_URL and CELERY_BROKER_URL.startswith("redis") else None,
)
CELERY_TASK_ALWAYS_EAGER = TASKS_IN_PROCESS
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Queues, so ingestion-adjacent work never waits behind a pipeline run: webhooks, DSRs,
# consent propagation and anything unrouted on `realtime`; the pipeline's fan-out on
# `pipeline`; periodic housekeeping on `maintenance`. A worker started without -Q takes
# all three (one machine); across hosts, give each its own (README, Scaling out).
CELERY_TASK_DEFAULT_QUEUE = "realtime"
CELERY_TASK_QUEUES = {name: {} for name in ("realtime", "pipeline", "maintenance")}
CELERY_TASK_ROUTES = {
    "personalization.pipeline_watchdog": {"queue": "maintenance"},  # not behind the run it watches
    "personalization.recommendations_refresh": {"queue": "realtime"},  # seconds, never behind a run
    "personalization.recommendations_refresh_drain": {"queue": "realtime"},
    "personalization.*": {"queue": "pipeline"},
    "consent.retention_purge": {"queue": "maintenance"},
    "consent.ledger_checkpoint_create": {"queue": "maintenance"},
    "consent.ledger_verification_run": {"queue": "maintenance"},
    "cdp.data_keys_rotate": {"queue": "maintenance"},
    "cdp.event_partitions_ensure": {"queue": "maintenance"},
}
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 900, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 840, minimum=1)
# Short enough that a task held by a killed worker is redelivered within minutes.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 1200, minimum=60)}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis or the broker away must not hold a request up (cdp.core.broker, cdp.core.cache):
# connecting gives up after this many seconds, and requests publish without retrying.
TESSERA_SERVICE_TIMEOUT_SECONDS = env_float("TESSERA_SERVICE_TIMEOUT_SECONDS", 1.0, minimum=0.1)
CELERY_BROKER_CONNECTION_TIMEOUT = TESSERA_SERVICE_TIMEOUT_SECONDS
if CELERY_BROKER_URL and CELERY_BROKER_URL.startswith("redis"):
    # socket_timeout stays above the worker's 1 s BRPOP wait.
    CELERY_BROKER_TRANSPORT_OPTIONS.update({"socket_connect_timeout": TESSERA_SERVICE_TIMEOUT_SECONDS,
                                            "socket_timeout": max(5.0, TESSERA_SERVICE_TIMEOUT_SECONDS)})
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = TESSERA_SERVICE_TIMEOUT_SECONDS
CELERY_REDIS_SOCKET_TIMEOUT = max(5.0, TESSERA_SERVICE_TIMEOUT_SECONDS)

# --- Webhooks ---------------------------------------------------------------------------
# Each delivery: a short timeout, then retries with exponential backoff from the base
# (doubling, capped), at most MAX_ATTEMPTS in all (defaults: 8 attempts over ~2 hours).
TESSERA_WEBHOOK_TIMEOUT_SECONDS = env_int("TESSERA_WEBHOOK_TIMEOUT_SECONDS", 5, minimum=1)
TESSERA_WEBHOOK_MAX_ATTEMPTS = env_int("TESSERA_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
TESSERA_WEBHOOK_RETRY_BASE_SECONDS = env_int("TESSERA_WEBHOOK_RETRY_BASE_SECONDS", 60, minimum=0)
TESSERA_WEBHOOK_RETRY_MAX_SECONDS = env_int("TESSERA_WEBHOOK_RETRY_MAX_SECONDS", 3600, minimum=0)
# How often beat runs the relay (fan-out after a lost wake-up, and due retries).
TESSERA_WEBHOOK_RELAY_INTERVAL_SECONDS = env_int("TESSERA_WEBHOOK_RELAY_INTERVAL_SECONDS", 30, minimum=1)
# Loopback/private/link-local targets: allowed in development, refused in production
# unless set (an API key must not reach internal services through a webhook).
TESSERA_WEBHOOK_ALLOW_PRIVATE_NETWORKS = env_bool("TESSERA_WEBHOOK_ALLOW_PRIVATE_NETWORKS", DEBUG)
# With tasks in-process (no broker, no beat), web processes run the periodic sweeps after a
# response, at most this often (cdp.core.outbox); 0 turns that off.
TESSERA_IN_PROCESS_SWEEP_SECONDS = env_int("TESSERA_IN_PROCESS_SWEEP_SECONDS", TESSERA_WEBHOOK_RELAY_INTERVAL_SECONDS,
                                           minimum=0)
CELERY_BEAT_SCHEDULE = {
    "webhooks-relay": {"task": "webhooks.webhooks_relay", "schedule": float(TESSERA_WEBHOOK_RELAY_INTERVAL_SECONDS)},
}

# --- Events by month (PostgreSQL): partitions made this many months ahead, daily -----------
TESSERA_EVENT_PARTITIONS_AHEAD = env_int("TESSERA_EVENT_PARTITIONS_AHEAD", 3, minimum=1)
CELERY_BEAT_SCHEDULE["event-partitions-ensure"] = {"task": "cdp.event_partitions_ensure", "schedule": 24 * 3600.0}

# --- Consent: ledger checkpoints, retention purge, DSR sweep -----------------------------
# Signed checkpoints of every consent chain head are written here (by beat, where
# TESSERA_CHECKPOINT_SIGNING_KEY is set); keep (or ship) them where the database's
# administrators cannot rewrite them. verify_consent_ledger uses the newest by default.
TESSERA_LEDGER_CHECKPOINT_DIR = env_str("TESSERA_LEDGER_CHECKPOINT_DIR", str(VAR_DIR / "ledger-checkpoints"))
TESSERA_LEDGER_CHECKPOINT_INTERVAL_SECONDS = env_int("TESSERA_LEDGER_CHECKPOINT_INTERVAL_SECONDS", 3600, minimum=60)
CELERY_BEAT_SCHEDULE.update({
    "consent-ledger-checkpoint": {"task": "consent.ledger_checkpoint_create",
                                  "schedule": float(TESSERA_LEDGER_CHECKPOINT_INTERVAL_SECONDS)},
    "consent-retention-purge": {"task": "consent.retention_purge", "schedule": 24 * 3600.0},
    "consent-dsr-pending": {"task": "consent.dsr_process_pending", "schedule": 600.0},
})

# --- Personalization: the nightly pipeline and its watchdog ----------------------------
CELERY_BEAT_SCHEDULE.update({
    # People left waiting for a real-time refresh by a lost task or an unreachable broker.
    "personalization-refresh-sweep": {"task": "personalization.recommendations_refresh_drain", "schedule": 60.0},
    # Quiet hours; a run that is still going when the next is due is not doubled.
    "personalization-pipeline": {"task": "personalization.pipeline_run", "schedule": crontab(hour=2, minute=30),
                                 "kwargs": {"trigger": "schedule"}},
    # Re-dispatches a run whose progress stopped (a message lost with its worker, or with
    # the broker: a step finished while it was away leaves the next one to this sweep).
    "personalization-pipeline-watchdog": {"task": "personalization.pipeline_watchdog",
                                          "schedule": float(env_int("TESSERA_PIPELINE_WATCHDOG_SECONDS", 300,
                                                                    minimum=1))},
})
# --- Campaigns: bandit weights and the daily DP release of results ----------------------
CELERY_BEAT_SCHEDULE.update({
    "campaigns-weights": {"task": "campaigns.campaign_weights_recompute_all",
                          "schedule": float(env_int("TESSERA_CAMPAIGN_WEIGHTS_SECONDS", 3600, minimum=10))},
    "campaigns-results": {"task": "campaigns.campaign_results_release_all", "schedule": crontab(hour=3, minute=15)},
})
# A run with no progress for this long is re-dispatched by the watchdog.
TESSERA_PIPELINE_STALL_SECONDS = env_int("TESSERA_PIPELINE_STALL_SECONDS", 20 * 60, minimum=5)

# --- REST framework ---------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "cdp.core.http.problems.problem_exception_handler",
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tessera API",
    "DESCRIPTION": "Privacy-first customer data platform: profiles, events, consent, recommendations.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # `type` names several choice sets (events, changes, DSRs); the DSR and event ones are
    # each used by two components, so they need names of their own rather than hash suffixes.
    "ENUM_NAME_OVERRIDES": {"DsrTypeEnum": "consent.models.DsrType.values",
                            "EventTypeEnum": "cdp.models.EventType.values"},
}

# --- Cache (API throttling) -----------------------------------------------------------------
# Throttle counters must be shared by every web process, so Redis is used whenever one is
# configured; the embedded default counts per process, which is fine for one machine.
# While Redis is unreachable the cache answers from per-process memory (cdp.core.cache):
# throttling then counts per process instead of failing requests.
_REDIS_CACHE_URL = env_url("REDIS_URL", schemes={"redis", "rediss"}) or (
    CELERY_BROKER_URL if CELERY_BROKER_URL and CELERY_BROKER_URL.startswith("redis") else None)
if _REDIS_CACHE_URL:
    CACHES = {"default": {"BACKEND": "cdp.core.cache.ResilientRedisCache",
                          "LOCATION": _REDIS_CACHE_URL, "KEY_PREFIX": "tessera",
                          "OPTIONS": {"socket_connect_timeout": TESSERA_SERVICE_TIMEOUT_SECONDS,
                                      "socket_timeout": TESSERA_SERVICE_TIMEOUT_SECONDS}}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Web and Celery worker processes: a young-generation garbage collection every this many
# allocations instead of 700, start-up's objects frozen (cdp.core.gc_tuning); 0: Python's way.
TESSERA_GC_GEN0_THRESHOLD = env_int("TESSERA_GC_GEN0_THRESHOLD", 50_000, minimum=0)

# Requests per API key, as "N/s", "N/m", "N/h" or "N/d" (DRF's rate syntax).
TESSERA_API_RATE = env_str("TESSERA_API_RATE", "50/s")
if not re.fullmatch(r"[1-9][0-9]*/(s|m|h|d)", TESSERA_API_RATE):
    raise ConfigurationError("TESSERA_API_RATE must be a number of requests per s, m, h or d, such as 50/s.")

# --- Identity resolution ------------------------------------------------------------------
# Values that never identify anyone, on top of the built-in junk list (normalized form).
TESSERA_IDENTIFIER_BLOCKLIST = frozenset(env_list("TESSERA_IDENTIFIER_BLOCKLIST"))
# Most identifiers of one kind a profile may hold; the newest yields first.
TESSERA_IDENTIFIER_CAPS = {
    "email": env_int("TESSERA_MAX_EMAILS", 5, minimum=1),
    "phone": env_int("TESSERA_MAX_PHONES", 5, minimum=1),
    "anonymous_id": env_int("TESSERA_MAX_ANONYMOUS_IDS", 500, minimum=1),
}
TESSERA_DEFAULT_PHONE_REGION = env_str("TESSERA_DEFAULT_PHONE_REGION")
# Attributes an operator declares non-personal are stored in plaintext (e.g. country).
TESSERA_NON_PERSONAL_ATTRIBUTES = frozenset(
    env_list("TESSERA_NON_PERSONAL_ATTRIBUTES", ["country", "loyalty_tier", "language"])
)

# --- Logging: structured JSON lines on stderr, never personal data ---------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
# Installs a record factory that redacts secrets in paths (magic links) from every record,
# Django's and libraries' included, then applies LOGGING (cdp.core.observability).
LOGGING_CONFIG = "cdp.core.observability.logging_configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "cdp.core.observability.JsonFormatter"}},
    "filters": {"redact_secrets": {"()": "cdp.core.observability.RedactSecretsFilter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["redact_secrets"]}},
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own request logger repeats the URL and sometimes the body: ours replaces it.
        "django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False},
        "django.server": {"handlers": [], "level": "ERROR", "propagate": False},
    },
}

# --- Keys, last: every other value is checked first, so a bad one is reported alone ---------
_keys = load_keys(os.environ, production=PRODUCTION, var_dir=VAR_DIR)
TESSERA_MASTER_KEYS: list[bytes] = _keys["TESSERA_MASTER_KEYS"]
TESSERA_INDEX_KEY: bytes = _keys["TESSERA_INDEX_KEY"][0]
TESSERA_LEDGER_KEY: bytes = _keys["TESSERA_LEDGER_KEY"][0]
# Ed25519 pair signing ledger checkpoints: the private half only where checkpoints are
# written (the beat/worker host), the public half wherever they are verified.
TESSERA_CHECKPOINT_SIGNING_KEY: bytes | None = _keys.get("TESSERA_CHECKPOINT_SIGNING_KEY")
TESSERA_CHECKPOINT_PUBLIC_KEY: bytes | None = _keys.get("TESSERA_CHECKPOINT_PUBLIC_KEY")
