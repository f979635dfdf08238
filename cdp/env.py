"""Reading configuration from the environment, the only place settings come from.

Every value goes through one of these helpers. A malformed value raises
`ConfigurationError` with one sentence naming the variable (never echoing its value,
which may be a secret); `manage.py`, `wsgi.py` and the Celery app turn that into a
plain message and a non-zero exit instead of a traceback.
"""

from __future__ import annotations

import math
import os
from urllib.parse import urlsplit

from cdp.core.errors import ConfigurationError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def env_bool(name: str, default: bool) -> bool:
    value = env_str(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be one of 1/0, true/false, yes/no.")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    return _env_number(name, default, int, "a whole number", minimum)


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    return _env_number(name, default, float, "a finite number", minimum)


def _env_number(name: str, default, convert, kind: str, minimum):
    value = env_str(name)
    if value is None:
        return default
    try:
        number = convert(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be {kind}.") from None
    if isinstance(number, float) and not math.isfinite(number):  # "nan", "inf"
        raise ConfigurationError(f"{name} must be {kind}.")
    if minimum is not None and number < minimum:
        raise ConfigurationError(f"{name} must be at least {minimum:g}.")
    return number


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = env_str(name)
    if value is None:
        return list(default or [])
    return [part.strip() for part in value.split(",") if part.strip()]


def env_url(name: str, *, schemes: set[str], default: str | None = None) -> str | None:
    """A URL whose scheme is one of `schemes`; anything else stops start-up."""
    value = env_str(name, default)
    if value is None:
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ConfigurationError(f"{name} could not be parsed as a URL.") from None
    if parts.scheme not in schemes:
        allowed = ", ".join(sorted(schemes))
        raise ConfigurationError(f"{name} must be a URL with one of the schemes {allowed}.")
    return value
