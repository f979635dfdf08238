"""json_bytes writes what the stdlib encoder would; stdlib_length_exceeds answers as the
stdlib's length would."""

import json
import random
import uuid
from datetime import UTC, datetime

import pytest

from cdp.core.json_codec import NotJson, json_bytes, stdlib_length_exceeds, strict_json_loads

ALPHABET = "abcXYZ 019\"\\/\n\t\x00\x1f\x7fé߿ࠀ€中\u2028\ud7ff\ue000😀𝄞"


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(12)))


def _value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return _text(rng)
    if kind == 1:
        return rng.choice([0, -1, 1, 2**31, -(2**63), 2**63 - 1, 2**64 - 1, rng.randrange(-10**9, 10**9)])
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return 2**64 + rng.randrange(10**6)  # beyond orjson: the stdlib writes it
    if kind == 4:
        return -(2**63) - 1 - rng.randrange(10**6)
    if kind == 5:
        return ""
    if kind == 6:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {_text(rng): _value(rng, depth + 1) for _ in range(rng.randrange(5))}


VALUES = [_value(random.Random(seed)) for seed in range(400)]


@pytest.mark.parametrize("sort_keys", [False, True])
def test_same_text_as_the_stdlib_encoder(sort_keys):
    for value in VALUES:
        expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)
        assert json_bytes(value, sort_keys=sort_keys) == expected.encode()


def test_floats_keep_their_value():
    floats = [0.1, 1e-05, 1e-7, 1e16, 1.2345678901234567e-300, -0.0, 5e-324, 1.7976931348623157e308]
    assert json.loads(json_bytes(floats)) == floats


def test_what_orjson_refuses_is_written_by_the_stdlib():
    # Non-str keys and integers beyond 64 bits.
    assert json_bytes({2: "a", 1: 2**70}, sort_keys=True) == b'{"1":1180591620717411303424,"2":"a"}'


def test_datetimes_go_through_default_as_with_the_stdlib():
    moment = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
    assert json_bytes({"at": moment}, default=str) == json.dumps(
        {"at": moment}, separators=(",", ":"), default=str).encode()
    with pytest.raises(TypeError):
        json_bytes({"at": moment})


def test_uuids_are_written_as_their_text():
    value = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert json_bytes([value], default=str) == b'["12345678-1234-5678-1234-567812345678"]'


def test_the_stdlib_text_is_at_most_three_times_longer():
    # The bound the length check's fast path relies on.
    for value in VALUES + ["😀" * 40, ["𝄞", 1e-05, [1, 2]]]:
        assert len(json.dumps(value, default=str)) <= 3 * len(json_bytes(value, default=str))


def test_length_check_agrees_with_the_stdlib_at_every_limit():
    heavy = ["😀" * 40, {"𝄞": ["中" * 7, 1e-05, 2**70]}, {"a": [1, 2, 3], "b": {"c": None}}]
    for value in VALUES + heavy + [{"at": datetime(2026, 12, 3, tzinfo=UTC)}]:
        length = len(json.dumps(value, default=str))
        for limit in range(max(0, length - 3), length + 4):
            assert stdlib_length_exceeds(value, limit) == (length > limit), (value, limit)
        # Far from the limit as well, where only the fast path runs.
        assert stdlib_length_exceeds(value, 3 * length + 100) is False


@pytest.mark.parametrize("text", ['{"a": NaN}', '[Infinity]', '[-Infinity]', '["\\ud800"]', '{"\\udc00": 1}',
                                  '["ok", {"b": ["x\\uDBFFy"]}]', '["\\ude00\\ud83d"]', "[1", b'["\xff"]'])
def test_strict_loads_refuses_what_is_not_storable_json(text):
    with pytest.raises(NotJson):
        strict_json_loads(text)


def test_strict_loads_keeps_paired_escapes_and_big_integers():
    text = '{"emoji": "\\ud83d\\ude00", "literal": "\\\\ud800", "big": 123456789012345678901234567890}'
    assert strict_json_loads(text.encode()) == {"emoji": "😀", "literal": "\\ud800",
                                                "big": 123456789012345678901234567890}
