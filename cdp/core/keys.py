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

    In development a missing key is taken from (or generated into) var/dev-keys.json,
    with a loud warning; in production every key must be set.
    """
    values = {name: (environ.get(name) or "").strip() for name in KEY_VARIABLES}
    missing = [name for name, value in values.items() if not value]
    if missing and production:
        return {}  # settings reports every missing production variable in one sentence
    if missing:
        dev_keys = _development_keys(var_dir)
        for name in missing:
            values[name] = dev_keys[name]
        print(
            f"WARNING: {', '.join(missing)} not set; using development keys from "
            f"{var_dir / 'dev-keys.json'}. Never use these in production.",
            file=sys.stderr,
        )
    master = [parse_key(part, variable="TESSERA_MASTER_KEYS")
              for part in values["TESSERA_MASTER_KEYS"].split(",") if part.strip()]
    if not master:
        raise ConfigurationError("TESSERA_MASTER_KEYS must list at least one key.")
    return {
        "TESSERA_MASTER_KEYS": master,
        "TESSERA_INDEX_KEY": [parse_key(values["TESSERA_INDEX_KEY"], variable="TESSERA_INDEX_KEY")],
        "TESSERA_LEDGER_KEY": [parse_key(values["TESSERA_LEDGER_KEY"], variable="TESSERA_LEDGER_KEY")],
    }


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
