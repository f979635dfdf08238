"""Envelope-encryption primitives: master keys, data keys, field ciphertexts, blind indexes.

Pure functions over bytes; no Django, no database, no logging. The layers are:

* master keys (KEKs) live only in settings; a `KeyRing` holds them, newest first, and
  wraps per-owner data keys (DEKs) with AES-256-GCM;
* personal fields are AES-256-GCM ciphertexts under a DEK, bound by associated data to
  the row and column they belong to;
* exact-match lookups use HMAC-SHA256 blind indexes under a separate index key.

Every MAC input is length-prefixed and starts with a versioned domain label, so the same
key can never produce the same output for two different purposes or inputs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Sequence
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cdp.core.errors import ConfigurationError

KEY_BYTES = 32
NONCE_BYTES = 12  # 96 bits: the size AES-GCM is designed for
TAG_BYTES = 16
FORMAT_VERSION = 1
_HEADER = bytes([FORMAT_VERSION])
_MIN_SEALED_BYTES = len(_HEADER) + NONCE_BYTES + TAG_BYTES

# 43 URL-safe base64 characters carry 32 bytes; the 44th is the optional "=" padding.
_KEY_TEXT = re.compile(r"[A-Za-z0-9_-]{43}=?")

_KEY_ID_LABEL = b"tessera:key-id:v1\x00"
_WRAP_LABEL = "tessera:wrap:v1"
_FIELD_AAD_PREFIX = b"tessera:v1|"
_BLIND_INDEX_LABEL = "tessera:blind-index:v1"
_KEYED_HASH_LABEL = "tessera:keyed-hash:v1"
_DERIVE_LABEL = "tessera:derived-key:v1"


class CryptoError(Exception):
    """Base class; messages never contain keys, plaintexts or ciphertexts."""


class DecryptionError(CryptoError):
    """The ciphertext is malformed, was tampered with, or belongs to another key or context."""


class KeyUnavailable(CryptoError):
    """The master key that wrapped a data key is no longer in the key ring."""


# --- keys -------------------------------------------------------------------------------


def parse_key(text: str, *, variable: str) -> bytes:
    """Decode a key from its settings text: 32 bytes in URL-safe base64, padding optional.

    The error names the variable but never echoes the value, which may be a real key.
    """
    cleaned = text.strip() if isinstance(text, str) else ""
    raw = _decode_key_text(cleaned) if _KEY_TEXT.fullmatch(cleaned) else None
    if raw is None:
        raise ConfigurationError(
            f"{variable} must be 32 random bytes in URL-safe base64 (the Fernet key format)."
        )
    return raw


def _decode_key_text(cleaned: str) -> bytes | None:
    unpadded = cleaned.rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(unpadded + "=")
    except (binascii.Error, ValueError):
        return None
    # Reject texts whose unused low bits are set: each key has exactly one spelling.
    if len(raw) != KEY_BYTES or base64.urlsafe_b64encode(raw).decode().rstrip("=") != unpadded:
        return None
    return raw


def key_id(key: bytes) -> str:
    """A short, stable fingerprint recording which key version wrapped or indexed something.

    Domain-separated so it can never equal a hash of the key computed for another purpose.
    """
    _require_key(key)
    return hashlib.sha256(_KEY_ID_LABEL + key).hexdigest()[:16]


def new_data_key() -> bytes:
    return os.urandom(KEY_BYTES)


def _require_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_BYTES:
        raise ValueError(f"a key must be {KEY_BYTES} bytes")


# --- sealing: version byte + nonce + AES-GCM ciphertext and tag -------------------------


def _seal(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    return _seal_with(AESGCM(key), plaintext, associated_data)


def _open(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    return _open_with(AESGCM(key), sealed, associated_data)


def _seal_with(aead: AESGCM, plaintext: bytes, associated_data: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    # The header is authenticated too, so a flipped version byte fails like any other bit.
    return _HEADER + nonce + aead.encrypt(nonce, plaintext, _HEADER + associated_data)


def _open_with(aead: AESGCM, sealed: bytes, associated_data: bytes) -> bytes:
    if len(sealed) < _MIN_SEALED_BYTES or sealed[:1] != _HEADER:
        raise DecryptionError("ciphertext is malformed or has an unknown format version")
    nonce = sealed[1 : 1 + NONCE_BYTES]
    try:
        return aead.decrypt(nonce, sealed[1 + NONCE_BYTES :], _HEADER + associated_data)
    except InvalidTag:
        # Re-raised without the cause: callers depend on our type, not cryptography's.
        raise DecryptionError("ciphertext failed authentication (wrong key, context or tampered)") from None


# --- master key ring --------------------------------------------------------------------


class KeyRing:
    """Master keys, newest (active) first. New wraps use the active key; unwrapping
    accepts any key still in the ring, which is what lets rotation happen gradually."""

    def __init__(self, master_keys: Sequence[bytes]):
        if not master_keys:
            raise ConfigurationError("TESSERA_MASTER_KEYS must list at least one key.")
        self._keys: dict[str, bytes] = {}
        for key in master_keys:
            _require_key(key)
            self._keys.setdefault(key_id(key), bytes(key))  # a repeated key keeps its first slot
        self._active_id = next(iter(self._keys))
        # One AES-GCM context per master key, built once: wrapping and unwrapping a data
        # key then costs the cipher work only. The ring already holds the keys themselves.
        self._aeads = {kek_id: AESGCM(key) for kek_id, key in self._keys.items()}

    @property
    def active_id(self) -> str:
        return self._active_id

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def __contains__(self, kek_id: object) -> bool:
        return kek_id in self._keys

    def wrap(self, dek: bytes, *, context: str) -> tuple[str, bytes]:
        """Encrypt a data key under the active master key; returns (kek id, wrapped bytes).

        `context` (e.g. the data key row id) is associated data, so a wrapped key copied
        to another row fails to unwrap.
        """
        _require_key(dek)
        return self._active_id, _seal_with(self._aeads[self._active_id], dek, _wrap_aad(context))

    def unwrap(self, kek_id: str, wrapped: bytes, *, context: str) -> bytes:
        aead = self._aeads.get(kek_id)
        if aead is None:
            raise KeyUnavailable(f"master key {kek_id} is not in the key ring (TESSERA_MASTER_KEYS)")
        return _open_with(aead, bytes(wrapped), _wrap_aad(context))

    def __repr__(self) -> str:  # ids only: a repr must never print key material
        return f"KeyRing(active={self._active_id!r}, keys={len(self._keys)})"


def _wrap_aad(context: str) -> bytes:
    return _encode_parts(_WRAP_LABEL, context)


# --- field encryption -------------------------------------------------------------------


def field_aad(owner_id: str, field: str) -> bytes:
    """Canonical associated data for one personal field: b"tessera:v1|<owner id>|<field>".

    The owner id is the profile id (or the held record's id): binding it and the field
    name means a ciphertext copied to another row or column fails to decrypt. Owner ids
    may not contain "|", which keeps the encoding unambiguous.
    """
    if not owner_id or "|" in owner_id:
        raise ValueError("owner_id must be non-empty and must not contain '|'")
    if not field:
        raise ValueError("field must be non-empty")
    return _FIELD_AAD_PREFIX + owner_id.encode() + b"|" + field.encode()


def encrypt_field(dek: bytes, plaintext: bytes, *, aad: bytes) -> bytes:
    """1 version byte + 12-byte random nonce + AES-256-GCM ciphertext and 16-byte tag."""
    _require_key(dek)
    return _seal(bytes(dek), plaintext, aad)


def decrypt_field(dek: bytes, ciphertext: bytes, *, aad: bytes) -> bytes:
    """Raises DecryptionError for a wrong key, wrong aad, or any tampered byte."""
    _require_key(dek)
    return _open(bytes(dek), bytes(ciphertext), aad)


class FieldCipher:
    """Field encryption under one data key, with its AES-GCM context built once.

    The same format and checks as encrypt_field / decrypt_field; for code that seals
    many fields under one key in a row (a batch). Hold it no longer than the key itself.
    """

    __slots__ = ("_aead",)

    def __init__(self, dek: bytes):
        _require_key(dek)
        self._aead = AESGCM(bytes(dek))

    def encrypt(self, plaintext: bytes, *, aad: bytes) -> bytes:
        return _seal_with(self._aead, plaintext, aad)

    def decrypt(self, ciphertext: bytes, *, aad: bytes) -> bytes:
        return _open_with(self._aead, bytes(ciphertext), aad)


# --- keyed hashes -----------------------------------------------------------------------


def _encode_parts(*parts: str) -> bytes:
    """Length-prefix every part, so ("a|b", "c") and ("a", "b|c") encode differently."""
    encoded = []
    for part in parts:
        data = part.encode()
        encoded += (len(data).to_bytes(4, "big"), data)
    return b"".join(encoded)


@lru_cache(maxsize=256)
def _blind_index_prefix(kind: str, namespace: str) -> bytes:
    # The same bytes _encode_parts gives for these leading parts; kinds and source keys are few.
    return _encode_parts(_BLIND_INDEX_LABEL, kind, namespace)


@lru_cache(maxsize=8)
def _hmac_sha256_pads(key: bytes) -> tuple:
    """HMAC-SHA256's keyed inner and outer hash states (RFC 2104), computed once per key.

    Copying them is the same HMAC as hmac.new(key, message, sha256), without re-deriving
    the pads on every call. Only long-lived keys from settings come here. Kept because it
    is measured faster on the hot path (every identifier's blind index, every evidence
    hash): bench/hmac_pads.py, 4.2 µs against 6.9 µs for hmac.digest / hmac.new on an
    email's blind index, 4.5 against 9.0 on a keyed hash (2026-12, this 2-core machine).
    """
    block = key.ljust(hashlib.sha256().block_size, b"\0")  # 32-byte keys never need hashing first
    return (hashlib.sha256(bytes(b ^ 0x36 for b in block)), hashlib.sha256(bytes(b ^ 0x5C for b in block)))


def _hmac_sha256_hex(key: bytes, message: bytes) -> str:
    inner_base, outer_base = _hmac_sha256_pads(bytes(key))
    inner = inner_base.copy()
    inner.update(message)
    outer = outer_base.copy()
    outer.update(inner.digest())
    return outer.hexdigest()


def blind_index(index_key: bytes, *, kind: str, namespace: str, normalized_value: str) -> str:
    """HMAC-SHA256 (64 hex chars) of an identifier, for exact-match lookups without plaintext."""
    _require_key(index_key)
    message = _blind_index_prefix(kind, namespace) + _encode_parts(normalized_value)
    return _hmac_sha256_hex(index_key, message)


def keyed_hash(key: bytes, value: str, *, purpose: str) -> str:
    """Pseudonymous evidence hash (IP address, user agent), separated by purpose so the
    same value hashed for two purposes cannot be linked."""
    _require_key(key)
    if not purpose:
        raise ValueError("purpose must be non-empty")
    return _hmac_sha256_hex(key, _encode_parts(_KEYED_HASH_LABEL, purpose, value))


def derive_key(key: bytes, *, name: str) -> bytes:
    """A 32-byte key for one named use, derived from a settings key (HMAC-SHA256 as a PRF):
    knowing the derived key tells nothing about the parent or about keys of other names."""
    _require_key(key)
    if not name:
        raise ValueError("name must be non-empty")
    return bytes.fromhex(_hmac_sha256_hex(key, _encode_parts(_DERIVE_LABEL, name)))


def advisory_lock_key(blind_index_hex: str) -> int:
    """A signed 64-bit int (PostgreSQL bigint) from the first 8 bytes of a blind index."""
    prefix = blind_index_hex[:16]
    if len(prefix) != 16:
        raise ValueError("a blind index must have at least 16 hex characters")
    return int.from_bytes(bytes.fromhex(prefix), "big", signed=True)
