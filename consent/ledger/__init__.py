"""The tamper-evident consent ledger: one HMAC chain per subject, MAC'd heads, checkpoints.

Threat model: someone who can write to the database (raw SQL, a restored backup, a
rogue operator) but does not hold TESSERA_LEDGER_KEY, which lives only in the
environment. Without the key nobody can compute a valid link, so:

* editing, inserting or reordering an event breaks the link of that event;
* deleting an event leaves a gap in its chain's positions (the next event names it);
* deleting the tail leaves a head (MAC'd, updated with every append) naming a longer chain;
* deleting a whole chain with its head, or restoring an older head with its shorter
  chain, is found by comparing with a checkpoint of all heads exported earlier and kept
  outside the database (`export_ledger_checkpoint`).

Everything else the policy reads is verified too: each materialized ConsentState must be
the replay of its chain (decision, notice version, expiry, time); each subject's
jurisdiction must equal the one its MAC'd head carries; purposes' legal bases and notice
versions must equal the newest entry of the configuration chain (PolicyConfigEvent, also
HMAC'd). Checkpoints are signed with an Ed25519 key the ledger key's holder need not have
(consent.checkpoint_signature), so even that holder cannot rewrite what a checkpoint saw.

Chains are per subject, so appends for different people lock different head rows and
never queue on one global lock. Reads and writes pseudonymous ids, purposes, codes and
keyed hashes only; logs nothing personal.

Modules: `chain` (links, heads, appending), `verification` (ledger_verify), `config` (the
policy configuration chain), `checkpoints` (signed exports of the heads), `report` (what
verification found). The names other code uses are importable from `consent.ledger`.
"""

from consent.checkpoint_signature import CheckpointInvalid
from consent.ledger.chain import (
    LINKED_FIELDS,
    LedgerBroken,
    event_link,
    genesis_link,
    head_jurisdiction_set,
    head_mac,
    heads_lock,
    ledger_append,
    subjects_lock,
)
from consent.ledger.checkpoints import CheckpointKeyMissing, checkpoint_parse, ledger_checkpoint_create
from consent.ledger.config import policy_config_head, policy_config_record, policy_config_snapshot
from consent.ledger.report import Finding, VerifyReport
from consent.ledger.verification import ledger_verify

__all__ = [
    "LINKED_FIELDS",
    "CheckpointInvalid",
    "CheckpointKeyMissing",
    "Finding",
    "LedgerBroken",
    "VerifyReport",
    "checkpoint_parse",
    "event_link",
    "genesis_link",
    "head_jurisdiction_set",
    "head_mac",
    "heads_lock",
    "ledger_append",
    "ledger_checkpoint_create",
    "ledger_verify",
    "policy_config_head",
    "policy_config_record",
    "policy_config_snapshot",
    "subjects_lock",
]
