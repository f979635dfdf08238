"""Envelope encryption for the profile domain.

Each profile (and each held third-party record) has its own data key (DEK), stored only
wrapped by the active master key. Personal fields are AES-GCM ciphertexts under that DEK
with "<owner id>|<field>" as associated data, so a ciphertext moved to another row or
column fails to decrypt. Exact-match lookups use keyed HMAC blind indexes. Rotating the
master key rewraps DEKs and never touches field ciphertexts; deleting a DEK shreds
everything under it. Nothing here logs values.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cdp.core import crypto_primitives as primitives
from cdp.core.bulk import bulk_update_fields
from cdp.core.ids import new_uuid4
from cdp.core.json_codec import json_bytes
from cdp.models import DataKey


@lru_cache(maxsize=4)
def _keyring(master_keys: tuple[bytes, ...]) -> primitives.KeyRing:
    return primitives.KeyRing(list(master_keys))


def keyring() -> primitives.KeyRing:
    return _keyring(tuple(settings.TESSERA_MASTER_KEYS))


def index_key_version() -> str:
    return primitives.key_id(settings.TESSERA_INDEX_KEY)


def _wrap_context(data_key_id) -> str:
    # Binds a wrapped key to its row: swapping wrapped keys between rows fails.
    return f"data-key:{data_key_id}"


def data_key_new() -> tuple[DataKey, bytes]:
    """An unsaved DataKey row and its plaintext key (kept only in memory)."""
    key_id, kek_id, wrapped, dek = data_key_material_new()
    return DataKey(id=key_id, kek_id=kek_id, wrapped=wrapped), dek


def data_key_material_new() -> tuple[uuid.UUID, str, bytes, bytes]:
    """A data key as plain values (row id, master key id, wrapped key, plaintext key),
    for hot paths that write DataKey rows without model instances."""
    key_id = new_uuid4()
    dek = primitives.new_data_key()
    kek_id, wrapped = keyring().wrap(dek, context=_wrap_context(key_id))
    return key_id, kek_id, wrapped, dek


def data_key_open(row: DataKey) -> bytes:
    return data_key_unwrap(row.id, row.kek_id, row.wrapped)


def data_key_unwrap(key_id, kek_id: str, wrapped: bytes) -> bytes:
    return keyring().unwrap(kek_id, bytes(wrapped), context=_wrap_context(key_id))


def encrypt_value(dek: bytes, *, owner_id, field: str, value: Any) -> bytes:
    plaintext = json_bytes(value, sort_keys=True)
    return primitives.encrypt_field(dek, plaintext, aad=primitives.field_aad(str(owner_id), field))


def decrypt_value(dek: bytes, *, owner_id, field: str, ciphertext: bytes) -> Any:
    plaintext = primitives.decrypt_field(dek, bytes(ciphertext), aad=primitives.field_aad(str(owner_id), field))
    return json.loads(plaintext)


class ValueCipher:
    """encrypt_value / decrypt_value for one batch: one AES-GCM context per data key.

    Same ciphertext format and associated data as the functions above. Lives for one
    batch (the plaintext keys it holds are in the batch's memory anyway) and is dropped
    with it.
    """

    def __init__(self):
        self._ciphers: dict[bytes, primitives.FieldCipher] = {}
        self._owner_texts: dict[Any, str] = {}  # str(UUID) once per owner, not once per field

    def _cipher(self, dek: bytes) -> primitives.FieldCipher:
        cipher = self._ciphers.get(dek)
        if cipher is None:
            cipher = self._ciphers[dek] = primitives.FieldCipher(dek)
        return cipher

    def _aad(self, owner_id, field: str) -> bytes:
        text = self._owner_texts.get(owner_id)
        if text is None:
            text = self._owner_texts[owner_id] = str(owner_id)
        return primitives.field_aad(text, field)

    def encrypt(self, dek: bytes, *, owner_id, field: str, value: Any) -> bytes:
        return self._cipher(dek).encrypt(json_bytes(value, sort_keys=True), aad=self._aad(owner_id, field))

    def decrypt(self, dek: bytes, *, owner_id, field: str, ciphertext: bytes) -> Any:
        return json.loads(self._cipher(dek).decrypt(ciphertext, aad=self._aad(owner_id, field)))


def blind_index(*, kind: str, namespace: str, normalized_value: str) -> str:
    return primitives.blind_index(settings.TESSERA_INDEX_KEY, kind=kind, namespace=namespace,
                                  normalized_value=normalized_value)


def data_keys_rotate(*, batch_size: int = 1000, on_progress: Callable[[int], None] | None = None) -> int:
    """Rewrap every data key not under the active master key; returns how many moved.

    Works in committed batches, so a run killed halfway keeps what it did and the next
    run finishes the rest; a run with nothing left to do changes nothing.
    """
    ring = keyring()
    rotated = 0
    while True:
        # Keyset passes over the id order; a second pass picks up rows that another
        # process held locked during the first. A pass that finds nothing ends the run.
        done_in_pass, last_id = 0, None
        while True:
            batch = _rotate_batch(ring, after_id=last_id, batch_size=batch_size)
            if not batch:
                break
            last_id = batch[-1].id
            done_in_pass += len(batch)
            if on_progress:
                on_progress(len(batch))
        rotated += done_in_pass
        if done_in_pass == 0:
            return rotated


@transaction.atomic
def _rotate_batch(ring: primitives.KeyRing, *, after_id, batch_size: int) -> list[DataKey]:
    queryset = DataKey.objects.select_for_update(skip_locked=True).exclude(kek_id=ring.active_id)
    if after_id is not None:
        queryset = queryset.filter(id__gt=after_id)
    batch = list(queryset.order_by("id")[:batch_size])
    now = timezone.now()
    for row in batch:
        context = _wrap_context(row.id)
        dek = ring.unwrap(row.kek_id, bytes(row.wrapped), context=context)
        row.kek_id, row.wrapped = ring.wrap(dek, context=context)
        row.rotated_at = now
    bulk_update_fields(DataKey, batch, ["kek_id", "wrapped", "rotated_at"])
    return batch


def data_keys_pending_rotation() -> int:
    return DataKey.objects.exclude(kek_id=keyring().active_id).count()
