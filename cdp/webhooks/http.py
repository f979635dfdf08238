"""One webhook POST with the standard library: short timeout, no redirects, no proxies.

Redirects are never followed (a 3xx is a failed attempt, logged with its code): a
receiver that moved must be re-registered, and we never carry a signed body to a host
the subscription did not name. Proxies from the environment are ignored, and each
connection checks the address it actually reached (cdp.webhooks.targets). The response
body is read only up to a few bytes and discarded.
"""

from __future__ import annotations

import http.client
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from cdp.webhooks.targets import address_allowed

RESPONSE_READ_LIMIT = 1024
USER_AGENT = "Tessera-Webhooks/1"


class AddressNotAllowed(OSError):
    """The URL's host resolved to an address deliveries may not reach."""


@dataclass(frozen=True)
class HttpOutcome:
    status_code: int | None
    error: str  # an exception class name, empty when a response arrived
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def post(url: str, *, body: bytes, headers: dict[str, str], timeout: float) -> HttpOutcome:
    # Only the http/https handlers are installed (see _opener), so no other scheme opens.
    request = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310
        "Content-Type": "application/json", "User-Agent": USER_AGENT, **headers})
    opener = _opener()
    started = time.perf_counter()
    status, error = None, ""
    try:
        with opener.open(request, timeout=timeout) as response:
            status = response.status
            response.read(RESPONSE_READ_LIMIT)
    except urllib.error.HTTPError as exc:  # a response with a non-2xx status (3xx included)
        status = exc.code
        exc.close()
    except urllib.error.URLError as exc:
        reason = exc.reason
        error = type(reason).__name__ if isinstance(reason, BaseException) else "URLError"
    except (OSError, http.client.HTTPException) as exc:  # timeouts mid-read, resets, bad status lines
        error = type(exc).__name__
    return HttpOutcome(status, error[:64], int((time.perf_counter() - started) * 1000))


def _opener() -> urllib.request.OpenerDirector:
    # Built by hand rather than with build_opener, which would add proxies from the
    # environment and handlers for file:, ftp: and data: URLs.
    opener = urllib.request.OpenerDirector()
    for handler in (_GuardedHTTPHandler(), _GuardedHTTPSHandler(), _NoRedirects(),
                    urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor(),
                    urllib.request.UnknownHandler()):
        opener.add_handler(handler)
    return opener


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError with the 3xx code


def _guarded_create_connection(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None, **kwargs):
    sock = socket.create_connection(address, timeout, source_address, **kwargs)
    # Checked on the socket we got, before a byte (or a TLS hello) is sent, so DNS
    # answers that change between check and use cannot slip through.
    if not address_allowed(sock.getpeername()[0]):
        sock.close()
        raise AddressNotAllowed("the webhook host resolved to a non-public address")
    return sock


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = _guarded_create_connection


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = _guarded_create_connection


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_GuardedHTTPConnection, req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(_GuardedHTTPSConnection, req, context=self._context)
