"""cdp.webhooks.targets: which hosts are addresses, and which addresses are public."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from cdp.webhooks import targets

LOOSE_FORMS = ["127.1", "2130706433", "0x7f.0.0.1", "0", "017700000001", "0x7f000001", "127.0.1", "1.2.3.4.5",
               "08.0.0.1", "0x100.0.0.1", "1.0x1000000", "1.2.0x10000", "255.255.255.255", "4294967296",
               "0xffffffff", "00000000010.1", "cafe", "1.2.3.256", "0x", "1..2"]


@pytest.mark.parametrize("host", LOOSE_FORMS)
def test_the_hand_written_rules_read_an_address_as_the_c_library_does(host, monkeypatch):
    try:
        expected = ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        expected = None

    def strict(text):  # a Python whose inet_aton takes dotted quads only
        raise OSError

    monkeypatch.setattr(targets.socket, "inet_aton", strict)
    assert targets._ipv4_loose(host) == expected


@pytest.mark.parametrize(("host", "address"), [
    ("hooks.example.com", None), ("deadbeef", None), ("127.0.0.1.", "127.0.0.1"),
    ("\uff11\uff12\uff17.0.0.1", "127.0.0.1"), ("[::1]".strip("[]"), "::1"), ("8.8.8.8", "8.8.8.8"),
])
def test_host_address_reads_literals_and_leaves_names(host, address):
    found = targets.host_address(host)
    assert (str(found) if found else None) == address


@pytest.mark.parametrize("host", ["%31%32%37.0.0.1", "::zz", "xn--a\udcff"])
def test_a_host_no_resolver_accepts_is_an_error(host):
    with pytest.raises(ValueError):
        targets.host_address(host)
