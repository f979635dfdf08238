"""Ed25519 signatures of ledger checkpoints, checkable offline with the public key alone.

A checkpoint (format 2) is JSON Lines: a header, then one line per chain head. The header
holds the SHA-256 digest of the head lines, the key id (first 16 hex digits of SHA-256
over the raw public key) and an Ed25519 signature over every other header field
(canonical JSON). The private key signs where the checkpoint task runs and need not be
on the database host or the web nodes; whoever holds the public key checks a file
without Django, the database or the ledger key:

    python -m consent.checkpoint_signature FILE --public-key KEY

exits 0 printing what the checkpoint covers, or 1 with one sentence. This module imports
nothing of Django's or ours, so that command runs from a bare checkout.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SIGNED_FORMAT = "tessera-ledger-checkpoint/2"
_SIGNATURE_LABEL = b"tessera:ledger-checkpoint-signature:v2\n"


class CheckpointInvalid(Exception):
    """A checkpoint file that is not one, or fails its MAC or signature."""


def key_decode(text: str) -> bytes | None:
    """32 raw bytes from base64 (URL-safe or standard, padding optional); None otherwise."""
    cleaned = (text or "").strip().rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(cleaned.replace("+", "-").replace("/", "_") + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def public_key_of(signing_key: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(signing_key).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:16]


def heads_digest(lines: list[str]) -> str:
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def _signed_bytes(header: dict) -> bytes:
    unsigned = {name: value for name, value in header.items() if name != "signature"}
    return _SIGNATURE_LABEL + json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()


def checkpoint_sign(header: dict, lines: list[str], signing_key: bytes) -> str:
    """The checkpoint file's text: `header` completed with format, digest, key id, signature."""
    private = Ed25519PrivateKey.from_private_bytes(signing_key)
    header = {**header, "format": SIGNED_FORMAT, "digest": heads_digest(lines),
              "key_id": key_id(public_key_of(signing_key))}
    header["signature"] = base64.b64encode(private.sign(_signed_bytes(header))).decode()
    return "\n".join([json.dumps(header, separators=(",", ":")), *lines]) + "\n"


def checkpoint_lines(text: str) -> tuple[dict, list[str]]:
    """The header and the head lines of a checkpoint file (any format)."""
    lines = [line for line in text.splitlines() if line.strip()]
    try:
        header = json.loads(lines[0])
    except (IndexError, ValueError):
        raise CheckpointInvalid("The checkpoint file is not a ledger checkpoint.") from None
    if not isinstance(header, dict):
        raise CheckpointInvalid("The checkpoint file is not a ledger checkpoint.")
    return header, lines[1:]


def checkpoint_verify_signature(text: str, public_key: bytes) -> tuple[dict, list[dict]]:
    """The header and heads of a signed checkpoint, after checking digest and signature."""
    header, lines = checkpoint_lines(text)
    if header.get("format") != SIGNED_FORMAT:
        raise CheckpointInvalid("The checkpoint file is not a signed ledger checkpoint.")
    expected_id = key_id(public_key)
    if header.get("key_id") != expected_id:
        raise CheckpointInvalid(f"The checkpoint was signed with key {str(header.get('key_id'))[:16]!r}, not the "
                                f"configured checkpoint public key ({expected_id}): its signature cannot be trusted.")
    try:
        signature = base64.b64decode(str(header.get("signature")), validate=True)
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, _signed_bytes(header))
    except (InvalidSignature, binascii.Error, ValueError):
        raise CheckpointInvalid("The checkpoint file fails its signature: it was altered or not signed with the "
                                "checkpoint signing key.") from None
    if heads_digest(lines) != header.get("digest"):
        raise CheckpointInvalid("The checkpoint file fails its signature: its heads were altered after signing.")
    try:
        heads = [json.loads(line) for line in lines]
    except ValueError:
        raise CheckpointInvalid("The checkpoint file is not a ledger checkpoint.") from None
    return header, heads


def offline_check_arguments(prog: str, description: str, argv: list[str] | None) -> tuple[str, bytes | None]:
    """The file and the public key of an offline check's command line (None, said on stderr,
    for a key that is not one)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("file")
    parser.add_argument("--public-key", required=True, help="TESSERA_CHECKPOINT_PUBLIC_KEY (base64 of 32 bytes).")
    args = parser.parse_args(argv)
    public_key = key_decode(args.public_key)
    if public_key is None:
        print("--public-key must be 32 bytes in base64.", file=sys.stderr)
    return args.file, public_key


def main(argv: list[str] | None = None) -> int:
    path, public_key = offline_check_arguments("python -m consent.checkpoint_signature",
                                               "Check a ledger checkpoint's signature with the public key alone.",
                                               argv)
    if public_key is None:
        return 1
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        header, heads = checkpoint_verify_signature(text, public_key)
    except OSError:
        print("The checkpoint file cannot be read.", file=sys.stderr)
        return 1
    except (CheckpointInvalid, ValueError) as error:
        print(str(error) if isinstance(error, CheckpointInvalid) else "The checkpoint file is not a ledger checkpoint.",
              file=sys.stderr)
        return 1
    print(f"The checkpoint of {header.get('created_at')} carries a valid signature by key {header['key_id']}: "
          f"{len(heads)} chains, {header.get('events')} events.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
