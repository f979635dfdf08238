"""Writing ledger checkpoints to files kept outside the database.

The periodic task writes one into TESSERA_LEDGER_CHECKPOINT_DIR (default var/ledger-
checkpoints); in production point it at storage the database's administrators cannot
rewrite (another host, an object store with retention lock), or ship the files
elsewhere. `export_ledger_checkpoint` prints or writes one on demand.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from consent.ledger import checkpoint_parse, ledger_checkpoint_create


def checkpoint_dir() -> Path:
    configured = getattr(settings, "TESSERA_LEDGER_CHECKPOINT_DIR", None)
    return Path(configured) if configured else Path(settings.VAR_DIR) / "ledger-checkpoints"


def ledger_checkpoint_write(*, path: str | None = None) -> str:
    """Take a checkpoint and write it (owner-only permissions); returns the path."""
    target = Path(path) if path else checkpoint_dir() / f"checkpoint-{timezone.now():%Y%m%dT%H%M%S%fZ}.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    _, text = ledger_checkpoint_create(path=str(target))
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return str(target)


def checkpoint_latest() -> Path | None:
    directory = checkpoint_dir()
    if not directory.is_dir():
        return None
    files = sorted(directory.glob("checkpoint-*.jsonl"))
    return files[-1] if files else None


def checkpoint_load(path: str | Path) -> dict:
    return checkpoint_parse(Path(path).read_text())
