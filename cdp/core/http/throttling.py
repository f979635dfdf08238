"""Requests per API key (TESSERA_API_RATE, default 50/s), counted in the shared cache."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from cdp.core.http.models import ApiKey


class ApiKeyRateThrottle(SimpleRateThrottle):
    scope = "api_key"

    def get_rate(self) -> str:
        # Read per request rather than from DRF's import-time THROTTLE_RATES, so the
        # setting (and tests overriding it) always apply.
        return settings.TESSERA_API_RATE

    def get_cache_key(self, request, view) -> str | None:
        if not isinstance(request.auth, ApiKey):
            return None
        # The prefix is random per key, unlike a reused primary key after a rollback.
        return self.cache_format % {"scope": self.scope, "ident": request.auth.prefix}
