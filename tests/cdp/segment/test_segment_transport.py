"""Body decoding (gzip with a cap, JSON) and write-key extraction: no database."""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from cdp.segment.transport import BodyRejected, body_decode, write_key_from


def rejected(raw, encoding=None, limit=1024):
    with pytest.raises(BodyRejected) as caught:
        body_decode(raw, content_encoding=encoding, limit=limit)
    return caught.value


def test_plain_and_gzip_bodies_decode():
    body = {"batch": [{"type": "track"}]}
    assert body_decode(json.dumps(body).encode(), content_encoding=None, limit=1024) == body
    assert body_decode(gzip.compress(json.dumps(body).encode()), content_encoding="gzip", limit=1024) == body


def test_a_zip_bomb_stops_at_the_cap_with_413():
    bomb = gzip.compress(b"[" + b" " * 50_000_000 + b"]")
    assert len(bomb) < 100_000
    error = rejected(bomb, "gzip", limit=4 * 1024 * 1024)
    assert (error.status, error.code) == (413, "body_too_large")


def test_a_plain_body_over_the_cap_is_413():
    assert rejected(b"{" + b" " * 2000 + b"}").status == 413


@pytest.mark.parametrize(("raw", "encoding", "status", "code"), [
    (b"{not json", None, 400, "malformed_json"),
    (b"[1, 2]", None, 400, "malformed_json"),
    (b"\xff\xfe\x00garbage", None, 400, "malformed_json"),
    (b"not gzip at all", "gzip", 400, "malformed_gzip"),
    (gzip.compress(b"{}")[:-6], "gzip", 400, "malformed_gzip"),
    (b"{}", "br", 415, "unsupported_encoding"),
    (b"[" * 100_000 + b"]" * 100_000, None, 400, "malformed_json"),
])
def test_malformed_bodies(raw, encoding, status, code):
    error = rejected(raw, encoding, limit=1_000_000)
    assert (error.status, error.code) == (status, code)
    assert "garbage" not in error.message and "not json" not in error.message


def test_write_key_from_basic_user_name_or_body():
    header = "Basic " + base64.b64encode(b"wk_abc:").decode()
    assert write_key_from(header, {"writeKey": "wk_other"}) == "wk_abc"  # the header wins
    assert write_key_from(None, {"writeKey": "wk_body"}) == "wk_body"
    assert write_key_from("Basic !!!", {"writeKey": "wk_body"}) is None  # a bad header is not bypassed
    assert write_key_from("Bearer token", {}) is None
    assert write_key_from(None, {"writeKey": 5}) is None
