#!/usr/bin/env python
"""Container health check: GET /healthz on the local gunicorn; exit 0 only on HTTP 200.

Production settings redirect plain HTTP to HTTPS and reject Host headers outside
ALLOWED_HOSTS, so the probe presents itself the way the TLS proxy in front does:
`X-Forwarded-Proto: https` (trusted through SECURE_PROXY_SSL_HEADER) and the first
allowed host. A redirect counts as a failure instead of being followed.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

URL = "http://127.0.0.1:8000/healthz"
TIMEOUT_SECONDS = 4  # under the HEALTHCHECK timeout of 5s


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError for the 3xx


def _host() -> str:
    for entry in os.environ.get("ALLOWED_HOSTS", "").split(","):
        entry = entry.strip().lstrip(".")  # ".example.com" also allows "example.com"
        if entry and entry != "*":
            return entry
    return "localhost"  # development defaults and "*" both allow it


def main() -> int:
    request = urllib.request.Request(URL, headers={"Host": _host(), "X-Forwarded-Proto": "https"})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError) as error:
        print(f"healthcheck: {URL} unreachable: {error}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"healthcheck: {URL} answered HTTP {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
