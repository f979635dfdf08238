"""Loading the three key settings, with generated development keys as a fallback."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path

from cdp.core.crypto import parse_key
from cdp.core.errors import ConfigurationError

KEY_VARIABLES = ("TESSERA_MASTER_KEYS", "TESSERA_INDEX_KEY", "TESSERA_LEDGER_KEY")


def new_key_text() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def load_keys(environ: dict[str, str], *, production: bool, var_dir: Path) -> dict[str, list[bytes]]:
    """Master keys (newest first), index key and ledger key as raw bytes.

    Values that are set are checked first, so a malformed one is reported alone. In
    development a missing key is taken from (or generated into) var/dev-keys.json, with
    a loud warning; in production every key must be set (settings reports what is missing).
    """
    values = {name: (environ.get(name) or "").strip() for name in KEY_VARIABLES}
    parsed = {name: _parse(name, text) for name, text in values.items() if text}
    missing = [name for name in KEY_VARIABLES if name not in parsed]
    if missing and production:
        return {}
    if missing:
        dev_keys = _development_keys(var_dir)
        parsed.update({name: _parse(name, dev_keys[name]) for name in missing})
        print(
            f"WARNING: {', '.join(missing)} not set; using development keys from "
            f"{var_dir / 'dev-keys.json'}. Never use these in production.",
            file=sys.stderr,
        )
    return parsed


def _parse(name: str, text: str) -> list[bytes]:
    keys = [parse_key(part, variable=name) for part in text.split(",") if part.strip()]
    if not keys or (name != "TESSERA_MASTER_KEYS" and len(keys) != 1):
        raise ConfigurationError(f"{name} must hold exactly one key." if name != "TESSERA_MASTER_KEYS"
                                 else "TESSERA_MASTER_KEYS must list at least one key.")
    return keys


def _development_keys(var_dir: Path) -> dict[str, str]:
    path = var_dir / "dev-keys.json"
    if path.exists():
        return json.loads(path.read_text())
    var_dir.mkdir(parents=True, exist_ok=True)
    keys = {name: new_key_text() for name in KEY_VARIABLES}
    # Written with owner-only permissions: these keys decrypt the development database.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process generated them first: use theirs
        return json.loads(path.read_text())
    with os.fdopen(fd, "w") as handle:
        json.dump(keys, handle, indent=2)
    return keys
