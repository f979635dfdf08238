"""Which URLs a subscription may name, and which addresses a delivery may connect to.

A webhook makes our servers send requests to an address an API key holder chose, so in
production we refuse plain http and, unless TESSERA_WEBHOOK_ALLOW_PRIVATE_NETWORKS is
set, loopback, private and link-local addresses (checked again on every connection,
after DNS, so a name that later resolves inward is refused too).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django.conf import settings

from cdp.webhooks.errors import WebhookErrorCode

MAX_URL_LENGTH = 2048


class TargetRejected(ValueError):
    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def url_check(url: str) -> str:
    """The URL as stored, or TargetRejected. Messages never repeat the URL."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise TargetRejected(f"Give an absolute http(s) URL of at most {MAX_URL_LENGTH} characters.",
                             WebhookErrorCode.INVALID_URL)
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise TargetRejected("The URL may not contain spaces or control characters.", WebhookErrorCode.INVALID_URL)
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a malformed port
    except ValueError:
        raise TargetRejected("The URL could not be parsed.", WebhookErrorCode.INVALID_URL) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise TargetRejected("The URL must use https (or http outside production).", WebhookErrorCode.INVALID_SCHEME)
    if scheme == "http" and settings.PRODUCTION:
        raise TargetRejected("In production a webhook URL must use https.", WebhookErrorCode.HTTPS_REQUIRED)
    if not parts.hostname:
        raise TargetRejected("The URL must name a host.", WebhookErrorCode.INVALID_URL)
    if parts.username is not None or parts.password is not None:
        # Credentials in a URL end up in logs and admin pages; sign-in is the signature's job.
        raise TargetRejected("The URL may not contain credentials.", WebhookErrorCode.URL_HAS_CREDENTIALS)
    if parts.fragment:
        raise TargetRejected("The URL may not contain a fragment.", WebhookErrorCode.INVALID_URL)
    if port == 0:
        raise TargetRejected("The URL's port must be between 1 and 65535.", WebhookErrorCode.INVALID_URL)
    if not private_networks_allowed() and _names_internal_host(parts.hostname):
        raise TargetRejected("The URL names a loopback, private or link-local address.",
                             WebhookErrorCode.PRIVATE_ADDRESS)
    return url


def private_networks_allowed() -> bool:
    return bool(settings.TESSERA_WEBHOOK_ALLOW_PRIVATE_NETWORKS)


def address_allowed(address: str) -> bool:
    """May a delivery connect to this IP address (after DNS)?"""
    if private_networks_allowed():
        return True
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _names_internal_host(hostname: str) -> bool:
    host = hostname.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return not address_allowed(host)
    except ValueError:
        return False  # a DNS name: checked on connection
