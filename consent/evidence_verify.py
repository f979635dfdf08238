"""Offline check of a per-subject evidence bundle, with the checkpoint public key alone.

A bundle (consent.evidence.evidence_bundle_build) is one JSON document in canonical form
(sorted keys, no spaces, ASCII) plus a newline: `{"bundle": {...}, "signature": {...}}`.
The signature is Ed25519 by the checkpoint signing key over the canonical bytes of
"bundle"; the key id is the first 16 hex digits of SHA-256 over the raw public key, as
for checkpoints. The check needs no Django, database or ledger key:

    python -m consent.evidence_verify BUNDLE --public-key KEY

It checks that the file is exactly the canonical form (so no byte can change unnoticed),
the key id and the signature, then that each chain of the timeline is consistent: positions
run 1, 2, ... and each event names the link of the one before it as its previous link.
Recomputing the links themselves needs the ledger key (an HMAC); a holder of it can.
Exits 0 with one line saying what was verified, or 1 with one sentence saying why not.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from consent.checkpoint_signature import key_id, offline_check_arguments, public_key_of

BUNDLE_FORMAT = "tessera-evidence-bundle/1"
_SIGNATURE_LABEL = b"tessera:evidence-bundle-signature:v1\n"


class BundleInvalid(Exception):
    """A bundle that is not one, is altered, or is inconsistent."""


def canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def bundle_sign(bundle: dict, signing_key: bytes) -> bytes:
    """The file's bytes: the bundle with its Ed25519 signature, in canonical form."""
    signature = Ed25519PrivateKey.from_private_bytes(signing_key).sign(_SIGNATURE_LABEL + canonical(bundle))
    return canonical({"bundle": bundle, "signature": {
        "algorithm": "Ed25519", "key_id": key_id(public_key_of(signing_key)),
        "value": base64.b64encode(signature).decode()}}) + b"\n"


def bundle_verify(data: bytes, public_key: bytes) -> dict:
    """The bundle, after checking form, signature and chain consistency; raises BundleInvalid."""
    try:
        document = json.loads(data.decode("ascii"))
        bundle, signature = document["bundle"], document["signature"]
    except (UnicodeDecodeError, ValueError, TypeError, KeyError):
        raise BundleInvalid("The file is not an evidence bundle (it is not the bundle's JSON).") from None
    if canonical(document) + b"\n" != data:
        raise BundleInvalid("The file is not in the canonical form it was signed in: it was altered.")
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        raise BundleInvalid("The file is not an evidence bundle of a known format.")
    if not isinstance(signature, dict) or set(signature) != {"algorithm", "key_id", "value"} \
            or signature["algorithm"] != "Ed25519" or set(document) != {"bundle", "signature"}:
        raise BundleInvalid("The bundle's signature block is not an Ed25519 signature: it was altered.")
    if signature.get("key_id") != key_id(public_key):
        raise BundleInvalid(f"The bundle was signed with key {str(signature.get('key_id'))[:16]!r}, not the given "
                            f"public key ({key_id(public_key)}): its signature cannot be trusted.")
    try:
        raw = base64.b64decode(str(signature.get("value")), validate=True)
        Ed25519PublicKey.from_public_bytes(public_key).verify(raw, _SIGNATURE_LABEL + canonical(bundle))
    except (InvalidSignature, binascii.Error, ValueError):
        raise BundleInvalid("The bundle fails its signature: it was altered or not signed with the checkpoint "
                            "signing key.") from None
    timeline_check(bundle.get("timeline") or [])
    return bundle


def timeline_check(timeline: list[dict]) -> None:
    """Each subject's events in the timeline, by position, must form an unbroken chain."""
    chains: dict[str, list[dict]] = {}
    for event in timeline:
        chains.setdefault(str(event.get("profile_id")), []).append(event)
    for pid, events in chains.items():
        events.sort(key=lambda e: int(e.get("position") or 0))
        previous = None
        for expected, event in enumerate(events, start=1):
            if event.get("position") != expected:
                raise BundleInvalid(f"Subject {pid}'s chain has no event at position {expected}: the timeline "
                                    "is incomplete.")
            if previous is not None and event.get("previous_link") != previous:
                raise BundleInvalid(f"Subject {pid}'s event {expected} does not follow event {expected - 1}: "
                                    "the chain is broken.")
            previous = event.get("link")


def main(argv: list[str] | None = None) -> int:
    path, public_key = offline_check_arguments("python -m consent.evidence_verify",
                                               "Check a per-subject evidence bundle with the public key alone.", argv)
    if public_key is None:
        return 1
    try:
        with open(path, "rb") as handle:
            bundle = bundle_verify(handle.read(), public_key)
    except OSError:
        print("The bundle file cannot be read.", file=sys.stderr)
        return 1
    except BundleInvalid as error:
        print(f"NOT VERIFIED: {error}", file=sys.stderr)
        return 1
    verification = bundle.get("verification") or {}
    print(f"VERIFIED: the evidence bundle of subject {bundle.get('subject')} made {bundle.get('created_at')} "
          f"carries a valid signature by key {key_id(public_key)}; {len(bundle.get('timeline') or [])} consent "
          f"events form unbroken chains; the ledger check at export time: {verification.get('result')}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
