"""Loading the key settings, with generated development keys as a fallback.

The three symmetric keys (master, index, ledger) are required in production. The
checkpoint keys are an Ed25519 pair: the private half signs ledger checkpoints where the
checkpoint task runs and may be absent everywhere else (the database host, web nodes);
the public half verifies them.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cdp.core.crypto_primitives import parse_key
from cdp.core.errors import ConfigurationError

KEY_VARIABLES = ("TESSERA_MASTER_KEYS", "TESSERA_INDEX_KEY", "TESSERA_LEDGER_KEY")
SIGNING_KEY_VARIABLE = "TESSERA_CHECKPOINT_SIGNING_KEY"
PUBLIC_KEY_VARIABLE = "TESSERA_CHECKPOINT_PUBLIC_KEY"


def new_key_text() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def load_keys(environ: dict[str, str], *, production: bool, var_dir: Path) -> dict:
    """Master keys (newest first), index key and ledger key as lists of raw bytes; the
    checkpoint signing and public keys as raw bytes or None.

    Values that are set are checked first, so a malformed one is reported alone. In
    development a missing key is taken from (or generated into) var/dev-keys.json, with
    a loud warning; in production every symmetric key must be set (settings reports what
    is missing) and the checkpoint keys are optional.
    """
    values = {name: (environ.get(name) or "").strip() for name in KEY_VARIABLES}
    parsed: dict = {name: _parse(name, text) for name, text in values.items() if text}
    signing, public = _checkpoint_keys_parse(environ)
    missing = [name for name in KEY_VARIABLES if name not in parsed]
    if missing and production:
        return {}
    if signing is None and public is None and not production:
        missing.append(SIGNING_KEY_VARIABLE)
    if missing:
        dev_keys = _development_keys(var_dir, *missing)
        parsed.update({name: _parse(name, dev_keys[name]) for name in missing if name in KEY_VARIABLES})
        if SIGNING_KEY_VARIABLE in missing:
            signing = parse_key(dev_keys[SIGNING_KEY_VARIABLE], variable=SIGNING_KEY_VARIABLE)
        print(
            f"WARNING: {', '.join(missing)} not set; using development keys from "
            f"{var_dir / 'dev-keys.json'}. Never use these in production.",
            file=sys.stderr,
        )
    if signing is not None:
        public = Ed25519PrivateKey.from_private_bytes(signing).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    parsed[SIGNING_KEY_VARIABLE], parsed[PUBLIC_KEY_VARIABLE] = signing, public
    return parsed


def _checkpoint_keys_parse(environ: dict[str, str]) -> tuple[bytes | None, bytes | None]:
    """The checkpoint keys that are set, checked: an Ed25519 pair (the private half may be
    absent where checkpoints are only verified; when both are set they must match)."""
    signing_text = (environ.get(SIGNING_KEY_VARIABLE) or "").strip()
    public_text = (environ.get(PUBLIC_KEY_VARIABLE) or "").strip()
    signing = parse_key(signing_text, variable=SIGNING_KEY_VARIABLE) if signing_text else None
    public = parse_key(public_text, variable=PUBLIC_KEY_VARIABLE) if public_text else None
    if public is not None:
        try:
            Ed25519PublicKey.from_public_bytes(public)
        except ValueError:
            raise ConfigurationError(f"{PUBLIC_KEY_VARIABLE} must be an Ed25519 public key.") from None
    if signing is not None and public is not None:
        derived = Ed25519PrivateKey.from_private_bytes(signing).public_key().public_bytes(Encoding.Raw,
                                                                                           PublicFormat.Raw)
        if derived != public:
            raise ConfigurationError(f"{PUBLIC_KEY_VARIABLE} is not the public half of {SIGNING_KEY_VARIABLE}.")
    return signing, public


def _parse(name: str, text: str) -> list[bytes]:
    keys = [parse_key(part, variable=name) for part in text.split(",") if part.strip()]
    if not keys or (name != "TESSERA_MASTER_KEYS" and len(keys) != 1):
        raise ConfigurationError(f"{name} must hold exactly one key." if name != "TESSERA_MASTER_KEYS"
                                 else "TESSERA_MASTER_KEYS must list at least one key.")
    return keys


def _development_keys(var_dir: Path, *wanted: str) -> dict[str, str]:
    path = var_dir / "dev-keys.json"
    if path.exists():
        keys = json.loads(path.read_text())
        if all(name in keys for name in wanted):
            return keys
        # A file from before a key was added: add it, keeping the keys that encrypt data.
        keys.update({name: new_key_text() for name in wanted if name not in keys})
        partial = path.with_name(f".dev-keys.{os.getpid()}.json")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(keys, handle, indent=2)
        os.replace(partial, path)
        return json.loads(path.read_text())
    var_dir.mkdir(parents=True, exist_ok=True)
    keys = {name: new_key_text() for name in (*KEY_VARIABLES, SIGNING_KEY_VARIABLE)}
    # Written whole to a file of our own (owner-only: these keys decrypt the development
    # database), then linked into place, which fails if another process (a gunicorn worker
    # starting beside this one) got there first: nobody ever reads a half-written file.
    partial = path.with_name(f".dev-keys.{os.getpid()}.json")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(keys, handle, indent=2)
    try:
        os.link(partial, path)
    except FileExistsError:  # another process generated them first: use theirs
        return json.loads(path.read_text())
    finally:
        partial.unlink()
    return keys
