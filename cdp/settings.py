"""Tessera settings: every value comes from the environment (see .env.example).

`DEBUG` unset means development: SQLite under var/, tasks in-process, generated
development keys. `DEBUG=false` means production: every key, `SECRET_KEY` and
`ALLOWED_HOSTS` must be set, or start-up stops with one sentence naming what is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

from cdp.core.errors import ConfigurationError
from cdp.core.keys import KEY_VARIABLES, load_keys
from cdp.env import env_bool, env_int, env_list, env_str, env_url

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
    "cdp.core",
    "cdp",
    "consent",
    "personalization",
]

MIDDLEWARE = [
    "cdp.core.observability.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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


def _database_from_env() -> dict:
    default_sqlite = f"sqlite:///{VAR_DIR / 'tessera.sqlite3'}"
    url = env_url("DATABASE_URL", schemes={"sqlite", "postgres", "postgresql", "pgsql"},
                  default=default_sqlite)
    try:
        config = dj_database_url.parse(url, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60))
    except Exception:  # dj-database-url raises several types for a bad URL
        raise ConfigurationError("DATABASE_URL could not be parsed as a database URL.") from None
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
        config.setdefault("OPTIONS", {})["server_side_binding"] = True
        config["CONN_HEALTH_CHECKS"] = True
    return config


DATABASES = {"default": _database_from_env()}
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

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = env_url("CELERY_BROKER_URL", schemes={"redis", "rediss", "amqp", "amqps", "pyamqp"})
TASKS_IN_PROCESS = CELERY_BROKER_URL is None
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
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 900, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 840, minimum=1)
# Short enough that a task held by a killed worker is redelivered within minutes.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 1200, minimum=60)}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- REST framework ---------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "cdp.exceptions.problem_exception_handler",
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Tessera API",
    "DESCRIPTION": "Privacy-first customer data platform: profiles, events, consent, recommendations.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

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
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "cdp.core.observability.JsonFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
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
