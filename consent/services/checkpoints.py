"""Writing signed ledger checkpoints to files kept outside the database, and finding the newest.

The periodic task writes one into TESSERA_LEDGER_CHECKPOINT_DIR (default var/ledger-
checkpoints) on the host where TESSERA_CHECKPOINT_SIGNING_KEY is set; in production point
it at storage the database's administrators cannot rewrite (another host, an object store
with retention lock), or ship the files elsewhere. `export_ledger_checkpoint` prints or
writes one on demand.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from consent.checkpoint_signature import SIGNED_FORMAT, CheckpointInvalid, checkpoint_lines
from consent.events import operator_action_event
from consent.ledger import checkpoint_parse, ledger_checkpoint_create

logger = logging.getLogger(__name__)

CHECKPOINT_TAKEN = "ledger_checkpoint_taken"


def checkpoint_dir() -> Path:
    configured = getattr(settings, "TESSERA_LEDGER_CHECKPOINT_DIR", None)
    return Path(configured) if configured else Path(settings.VAR_DIR) / "ledger-checkpoints"


def ledger_checkpoint_write(*, path: str | None = None) -> str:
    """Take a signed checkpoint and write it (owner-only permissions); returns the path.
    Raises CheckpointKeyMissing where no signing key is configured."""
    target = Path(path) if path else checkpoint_dir() / f"checkpoint-{timezone.now():%Y%m%dT%H%M%S%fZ}.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    _, text = ledger_checkpoint_create(path=str(target))
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return str(target)


def ledger_checkpoint_take(*, actor: str) -> str:
    """A checkpoint a compliance officer asked for: written as the scheduled ones are, and
    recorded as their action. Raises CheckpointKeyMissing where no signing key is configured."""
    path = ledger_checkpoint_write()
    operator_action_event(actor=actor, action=CHECKPOINT_TAKEN, detail={"file": Path(path).name})
    return path


def ledger_checkpoint_scheduled() -> str | None:
    """Beat's checkpoint: written where the signing key is configured; elsewhere (a worker
    without the private key) skipped, returning None."""
    if not getattr(settings, "TESSERA_CHECKPOINT_SIGNING_KEY", None):
        logger.info("ledger checkpoint skipped: no signing key on this host")
        return None
    return ledger_checkpoint_write()


def checkpoint_latest() -> Path | None:
    """The newest checkpoint file of the directory (by name, as the task names them).

    With a public key configured, the newest signed one: a legacy file MAC'd with the
    ledger key could have been made by anyone holding that key, so it is used only while
    no signed checkpoint exists. A newest file that claims to be signed is returned
    whatever its signature: verifying it then fails, which is the point.
    """
    directory = checkpoint_dir()
    if not directory.is_dir():
        return None
    files = sorted(directory.glob("checkpoint-*.jsonl"), reverse=True)
    if not files or not getattr(settings, "TESSERA_CHECKPOINT_PUBLIC_KEY", None):
        return files[0] if files else None
    for path in files:
        if _format_of(path) != "legacy":
            return path
    return files[0]


def _format_of(path: Path) -> str:
    try:
        with path.open(encoding="utf-8") as handle:
            header, _ = checkpoint_lines(handle.readline())
    except (OSError, UnicodeDecodeError, CheckpointInvalid):
        return "unreadable"
    return "signed" if header.get("format") == SIGNED_FORMAT else ("legacy" if "mac" in header else "unknown")


def checkpoint_load(path: str | Path) -> dict:
    return checkpoint_parse(Path(path).read_text())
