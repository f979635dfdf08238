"""Envelope-encryption primitives: pure, no database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp.core import crypto_primitives as crypto
from cdp.core.crypto_primitives import DecryptionError, KeyRing, KeyUnavailable
from cdp.core.errors import ConfigurationError

OWNER = "0b9e3c1e-8f43-4a0a-9d55-2f1f2c7c9a10"
OTHER_OWNER = "5d7a7a4e-1b6e-4c1f-8a3e-8c2b7f0e4d21"


def key_text(key: bytes, *, padded: bool = True) -> str:
    text = base64.urlsafe_b64encode(key).decode()
    return text if padded else text.rstrip("=")


# --- parse_key / key_id -----------------------------------------------------------------


@pytest.mark.parametrize("padded", [True, False])
def test_parse_key_accepts_fernet_format_with_or_without_padding(padded):
    key = os.urandom(32)
    assert crypto.parse_key(key_text(key, padded=padded), variable="TESSERA_INDEX_KEY") == key


def test_parse_key_tolerates_surrounding_whitespace():
    key = os.urandom(32)
    assert crypto.parse_key(f"  {key_text(key)}\n", variable="TESSERA_INDEX_KEY") == key


@pytest.mark.parametrize("text", [
    "",
    "not-a-key",
    key_text(os.urandom(16)),                                    # too short
    key_text(os.urandom(48)),                                    # too long
    base64.standard_b64encode(b"\xfb" * 32).decode(),            # standard alphabet ("+", "/")
    key_text(os.urandom(32))[:-2] + "!=",                        # bad character
    key_text(b"\x00" * 32)[:42] + "B=",                          # non-canonical trailing bits
    key_text(os.urandom(32)) + "==",                             # extra padding
])
def test_parse_key_rejects_anything_else_without_echoing_it(text):
    with pytest.raises(ConfigurationError) as excinfo:
        crypto.parse_key(text, variable="TESSERA_MASTER_KEYS")
    message = str(excinfo.value)
    assert message == ("TESSERA_MASTER_KEYS must be 32 random bytes in URL-safe base64 "
                       "(the Fernet key format).")
    if text:
        assert text not in message


def test_key_id_is_short_stable_and_reveals_nothing():
    key = os.urandom(32)
    assert crypto.key_id(key) == crypto.key_id(bytes(key))
    assert len(crypto.key_id(key)) == 16
    assert crypto.key_id(key) != crypto.key_id(os.urandom(32))
    assert crypto.key_id(key) not in key.hex()


def test_new_data_key_is_32_fresh_bytes():
    first, second = crypto.new_data_key(), crypto.new_data_key()
    assert len(first) == 32 and first != second


# --- field encryption -------------------------------------------------------------------


def test_field_round_trip():
    dek = crypto.new_data_key()
    aad = crypto.field_aad(OWNER, "email")
    ciphertext = crypto.encrypt_field(dek, b"jane.doe@example.org", aad=aad)
    assert crypto.decrypt_field(dek, ciphertext, aad=aad) == b"jane.doe@example.org"


def test_field_format_is_version_nonce_ciphertext_tag():
    ciphertext = crypto.encrypt_field(crypto.new_data_key(), b"x" * 40, aad=b"aad")
    assert ciphertext[0] == 1
    assert len(ciphertext) == 1 + 12 + 40 + 16


def test_same_plaintext_encrypts_differently_each_time():
    dek, aad = crypto.new_data_key(), crypto.field_aad(OWNER, "email")
    assert crypto.encrypt_field(dek, b"same", aad=aad) != crypto.encrypt_field(dek, b"same", aad=aad)


@pytest.mark.parametrize(("owner", "field"), [(OTHER_OWNER, "email"), (OWNER, "phone")])
def test_ciphertext_moved_to_another_row_or_column_fails(owner, field):
    dek = crypto.new_data_key()
    ciphertext = crypto.encrypt_field(dek, b"secret", aad=crypto.field_aad(OWNER, "email"))
    with pytest.raises(DecryptionError):
        crypto.decrypt_field(dek, ciphertext, aad=crypto.field_aad(owner, field))


def test_wrong_data_key_fails():
    aad = crypto.field_aad(OWNER, "email")
    ciphertext = crypto.encrypt_field(crypto.new_data_key(), b"secret", aad=aad)
    with pytest.raises(DecryptionError):
        crypto.decrypt_field(crypto.new_data_key(), ciphertext, aad=aad)


@pytest.mark.parametrize("position", [0, 1, 13, -1])  # version, nonce, body, tag
def test_tampered_byte_fails(position):
    dek, aad = crypto.new_data_key(), crypto.field_aad(OWNER, "email")
    tampered = bytearray(crypto.encrypt_field(dek, b"secret value", aad=aad))
    tampered[position] ^= 0x01
    with pytest.raises(DecryptionError):
        crypto.decrypt_field(dek, bytes(tampered), aad=aad)


@pytest.mark.parametrize("ciphertext", [b"", b"\x01", b"\x01" + b"\x00" * 27])
def test_truncated_ciphertext_fails(ciphertext):
    with pytest.raises(DecryptionError):
        crypto.decrypt_field(crypto.new_data_key(), ciphertext, aad=b"aad")


def test_decryption_error_does_not_chain_cryptography_exception():
    dek = crypto.new_data_key()
    ciphertext = crypto.encrypt_field(dek, b"secret", aad=b"a")
    with pytest.raises(DecryptionError) as excinfo:
        crypto.decrypt_field(dek, ciphertext, aad=b"b")
    assert excinfo.value.__cause__ is None and excinfo.value.__suppress_context__


def test_field_aad_is_canonical():
    assert crypto.field_aad("p1", "email") == b"tessera:v1|p1|email"


@pytest.mark.parametrize(("owner", "field"), [("", "email"), ("a|b", "c"), ("p1", "")])
def test_field_aad_rejects_ambiguous_parts(owner, field):
    with pytest.raises(ValueError):
        crypto.field_aad(owner, field)


def test_wrong_size_data_key_is_a_programming_error():
    with pytest.raises(ValueError):
        crypto.encrypt_field(b"short", b"x", aad=b"a")


@settings(max_examples=300, deadline=None)
@given(plaintext=st.binary(max_size=512), aad=st.binary(max_size=64))
def test_round_trip_arbitrary_bytes(plaintext, aad):
    dek = crypto.new_data_key()
    assert crypto.decrypt_field(dek, crypto.encrypt_field(dek, plaintext, aad=aad), aad=aad) == plaintext


@settings(max_examples=300, deadline=None)
@given(plaintext=st.binary(max_size=256), data=st.data())
def test_any_single_bit_flip_fails(plaintext, data):
    dek, aad = crypto.new_data_key(), crypto.field_aad(OWNER, "notes")
    ciphertext = bytearray(crypto.encrypt_field(dek, plaintext, aad=aad))
    bit = data.draw(st.integers(min_value=0, max_value=len(ciphertext) * 8 - 1), label="bit")
    ciphertext[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(DecryptionError):
        crypto.decrypt_field(dek, bytes(ciphertext), aad=aad)


# --- key ring ---------------------------------------------------------------------------


def test_wrap_unwrap_round_trip():
    ring, dek = KeyRing([os.urandom(32)]), crypto.new_data_key()
    kek_id, wrapped = ring.wrap(dek, context="data-key:1")
    assert kek_id == ring.active_id
    assert dek not in wrapped
    assert ring.unwrap(kek_id, wrapped, context="data-key:1") == dek


def test_newest_key_is_active():
    newest, older = os.urandom(32), os.urandom(32)
    ring = KeyRing([newest, older])
    assert ring.active_id == crypto.key_id(newest)
    assert ring.key_ids == (crypto.key_id(newest), crypto.key_id(older))


def test_unwrap_in_another_context_fails():
    ring = KeyRing([os.urandom(32)])
    kek_id, wrapped = ring.wrap(crypto.new_data_key(), context="data-key:1")
    with pytest.raises(DecryptionError):
        ring.unwrap(kek_id, wrapped, context="data-key:2")


def test_unwrap_tampered_fails():
    ring = KeyRing([os.urandom(32)])
    kek_id, wrapped = ring.wrap(crypto.new_data_key(), context="c")
    tampered = bytearray(wrapped)
    tampered[-1] ^= 0x80
    with pytest.raises(DecryptionError):
        ring.unwrap(kek_id, bytes(tampered), context="c")


def test_unwrap_with_removed_key_raises_key_unavailable():
    old, new = os.urandom(32), os.urandom(32)
    kek_id, wrapped = KeyRing([old]).wrap(crypto.new_data_key(), context="c")
    with pytest.raises(KeyUnavailable):
        KeyRing([new]).unwrap(kek_id, wrapped, context="c")


def test_rotation_rewraps_under_the_new_key():
    key_a, key_b = os.urandom(32), os.urandom(32)
    dek = crypto.new_data_key()
    id_a, wrapped_a = KeyRing([key_a]).wrap(dek, context="data-key:7")

    during = KeyRing([key_b, key_a])
    assert during.unwrap(id_a, wrapped_a, context="data-key:7") == dek
    id_b, wrapped_b = during.wrap(dek, context="data-key:7")
    assert id_b == crypto.key_id(key_b) != id_a

    after = KeyRing([key_b])
    assert after.unwrap(id_b, wrapped_b, context="data-key:7") == dek
    with pytest.raises(KeyUnavailable):
        after.unwrap(id_a, wrapped_a, context="data-key:7")


def test_empty_key_ring_is_a_configuration_error():
    with pytest.raises(ConfigurationError):
        KeyRing([])


def test_key_ring_repr_shows_no_key_material():
    key = os.urandom(32)
    text = repr(KeyRing([key]))
    assert key.hex() not in text and key_text(key) not in text


# --- blind index and keyed hashes -------------------------------------------------------


def test_blind_index_is_stable_hex():
    key = os.urandom(32)
    first = crypto.blind_index(key, kind="email", namespace="", normalized_value="jane@example.org")
    assert first == crypto.blind_index(key, kind="email", namespace="", normalized_value="jane@example.org")
    assert len(first) == 64 and int(first, 16) >= 0


@pytest.mark.parametrize("change", [
    {"kind": "phone"},
    {"namespace": "shop"},
    {"normalized_value": "john@example.org"},
])
def test_blind_index_differs_by_kind_namespace_and_value(change):
    key = os.urandom(32)
    base = {"kind": "email", "namespace": "", "normalized_value": "jane@example.org"}
    assert crypto.blind_index(key, **base) != crypto.blind_index(key, **(base | change))


def test_blind_index_differs_by_key():
    args = {"kind": "email", "namespace": "", "normalized_value": "jane@example.org"}
    assert crypto.blind_index(os.urandom(32), **args) != crypto.blind_index(os.urandom(32), **args)


@pytest.mark.parametrize(("first", "second"), [
    (("a|b", "c"), ("a", "b|c")),
    (("ab", "c"), ("a", "bc")),
    (("", "ab"), ("a", "b")),
])
def test_blind_index_encoding_is_unambiguous(first, second):
    key = os.urandom(32)
    assert (crypto.blind_index(key, kind="crm_id", namespace=first[0], normalized_value=first[1])
            != crypto.blind_index(key, kind="crm_id", namespace=second[0], normalized_value=second[1]))


def test_keyed_hash_is_stable_and_domain_separated_by_purpose():
    key = os.urandom(32)
    ip = crypto.keyed_hash(key, "203.0.113.9", purpose="ip")
    assert ip == crypto.keyed_hash(key, "203.0.113.9", purpose="ip")
    assert ip != crypto.keyed_hash(key, "203.0.113.9", purpose="user_agent")
    assert ip != crypto.keyed_hash(os.urandom(32), "203.0.113.9", purpose="ip")
    assert len(ip) == 64


def test_keyed_hash_never_equals_a_blind_index_of_the_same_input():
    key = os.urandom(32)
    assert (crypto.keyed_hash(key, "v", purpose="p")
            != crypto.blind_index(key, kind="p", namespace="", normalized_value="v"))


def test_derived_keys_are_stable_per_name_and_differ_from_their_parent():
    key = os.urandom(32)
    derived = crypto.derive_key(key, name="cache-pseudonyms")
    assert derived == crypto.derive_key(key, name="cache-pseudonyms") and len(derived) == 32
    assert derived != key and derived != crypto.derive_key(key, name="other")
    assert derived != crypto.derive_key(os.urandom(32), name="cache-pseudonyms")
    with pytest.raises(ValueError):
        crypto.derive_key(key, name="")


def test_advisory_lock_key_is_signed_64_bit_from_first_8_bytes():
    assert crypto.advisory_lock_key("0000000000000001" + "f" * 48) == 1
    assert crypto.advisory_lock_key("ffffffffffffffff" + "0" * 48) == -1
    assert crypto.advisory_lock_key("8000000000000000") == -(2**63)
    assert crypto.advisory_lock_key("7fffffffffffffff") == 2**63 - 1


def test_advisory_lock_key_of_a_real_blind_index_fits_bigint():
    index = crypto.blind_index(os.urandom(32), kind="email", namespace="", normalized_value="a@b.co")
    assert -(2**63) <= crypto.advisory_lock_key(index) < 2**63


def test_advisory_lock_key_rejects_short_input():
    with pytest.raises(ValueError):
        crypto.advisory_lock_key("abcd")


@given(key=st.binary(min_size=32, max_size=32), message=st.binary(max_size=300))
def test_the_cached_hmac_pads_compute_the_standard_hmac(key, message):
    """The hand-kept pads (kept for speed, bench/hmac_pads.py) must be exactly RFC 2104's HMAC-SHA256."""
    assert crypto._hmac_sha256_hex(key, message) == hmac.new(key, message, hashlib.sha256).hexdigest()
