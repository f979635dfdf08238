"""Which URLs a subscription may name, and which addresses a delivery may connect to.

A webhook makes our servers send requests to an address an API key holder chose, so in
production we refuse plain http and, unless TESSERA_WEBHOOK_ALLOW_PRIVATE_NETWORKS is
set, every address that is not public (checked again on every connection, after DNS, so
a name that later resolves inward is refused too). One function, `address_is_public`,
decides for both: at creation for a host written as an address in any form the resolver
reads as one (127.1, 2130706433, 0x7f.0.0.1, 0, [64:ff9b::7f00:1], ...), at delivery for
the address the socket reached.
"""

from __future__ import annotations

import ipaddress
import re
import socket
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
    try:
        internal = _names_internal_host(parts.hostname)
    except ValueError:
        raise TargetRejected("The URL's host is not a valid name or address.", WebhookErrorCode.INVALID_URL) from None
    if internal and not private_networks_allowed():
        raise TargetRejected("The URL names a loopback, private, link-local or otherwise non-public address.",
                             WebhookErrorCode.PRIVATE_ADDRESS)
    return url


def private_networks_allowed() -> bool:
    return bool(settings.TESSERA_WEBHOOK_ALLOW_PRIVATE_NETWORKS)


def address_allowed(address: str) -> bool:
    """May a delivery connect to this IP address (after DNS)?"""
    if private_networks_allowed():
        return True
    return address_is_public(ipaddress.ip_address(address))


IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Not reachable on the public internet, though Python's is_global may say otherwise
# (it varies between Python releases, so the list is written out here).
_NOT_PUBLIC = tuple(ipaddress.ip_network(net) for net in (
    "0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.88.99.0/24", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
    "::/128", "::1/128", "100::/64", "2001::/23", "2001:db8::/32", "64:ff9b:1::/48", "fc00::/7", "fec0::/10",
    "fe80::/10", "ff00::/8",
))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are the IPv4 address
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated; embeds IPv4 the same way


def address_is_public(ip: IpAddress) -> bool:
    """Is this a public unicast address? An IPv6 address that carries an IPv4 address
    (IPv4-mapped or -compatible, NAT64, 6to4, Teredo) is judged by what it carries."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded:
            return all(address_is_public(inner) for inner in embedded)
    if any(ip in network for network in _NOT_PUBLIC if network.version == ip.version):
        return False
    return ip.is_global and not (ip.is_multicast or ip.is_private or ip.is_reserved or ip.is_loopback
                                 or ip.is_link_local or ip.is_unspecified)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)  # the server and the client, both must be public
    if (ip in _NAT64 or ip in _IPV4_COMPATIBLE) and int(ip) > 1:  # "::" and "::1" are themselves
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    return []


# inet_aton's numbers-and-dots: one to four parts, each decimal, octal (0...) or hex (0x...).
_IPV4_LOOSE = re.compile(r"[0-9a-fx]+(\.[0-9a-fx]+){0,3}")


def host_address(hostname: str) -> IpAddress | None:
    """The address a URL's host names literally, in any form the resolver reads as an
    address; None for a DNS name. ValueError for a host no resolver would accept."""
    host = hostname.lower().rstrip(".")
    if not host.isascii():
        # The resolver applies IDNA, which maps full-width digits and dots to ASCII ones.
        try:
            host = host.encode("idna").decode("ascii").rstrip(".")
        except UnicodeError:
            raise ValueError("not a valid host name") from None
    if ":" in host:
        return ipaddress.IPv6Address(host)  # ValueError when malformed
    if "%" in host:
        raise ValueError("not a valid host name")
    if _IPV4_LOOSE.fullmatch(host):
        return _ipv4_loose(host)
    return None


def _ipv4_loose(host: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        pass
    # The same rules by hand, where Python's inet_aton is built on inet_pton (dotted quads
    # only) while the system resolver still reads the short forms.
    parts = host.split(".")
    try:
        numbers = [int(p, 16) if p.startswith("0x") else int(p, 8) if p.startswith("0") else int(p) for p in parts]
    except ValueError:
        return None
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for index, number in enumerate(leading):
        value |= number << (24 - 8 * index)
    return ipaddress.IPv4Address(value)


def _names_internal_host(hostname: str) -> bool:
    host = hostname.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    address = host_address(hostname)
    return address is not None and not address_is_public(address)
