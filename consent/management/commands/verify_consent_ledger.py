import sys

from django.core.management.base import BaseCommand

from consent.ledger import CheckpointInvalid, ledger_verify
from consent.services.checkpoints import checkpoint_latest, checkpoint_load


class Command(BaseCommand):
    help = ("Verify the whole consent ledger: every chain link and head, the current states replayed from the "
            "chains (expiry included), subjects' jurisdictions, the purpose bases and notice versions against "
            "their configuration history, and the newest signed checkpoint in TESSERA_LEDGER_CHECKPOINT_DIR (or "
            "--checkpoint FILE). Exit 0 when intact; exit 1 naming the first broken thing.")

    def add_arguments(self, parser):
        parser.add_argument("--checkpoint", metavar="FILE",
                            help="A checkpoint exported earlier (export_ledger_checkpoint). Default: the newest "
                                 "signed file in TESSERA_LEDGER_CHECKPOINT_DIR, if any.")
        parser.add_argument("--no-checkpoint", action="store_true",
                            help="Check the database alone (chains, heads, states, jurisdictions, configuration).")

    def handle(self, *args, checkpoint=None, no_checkpoint=False, **options):
        try:
            path = None if no_checkpoint else (checkpoint or checkpoint_latest())
            loaded = checkpoint_load(path) if path else None
        except (OSError, UnicodeDecodeError, CheckpointInvalid) as error:
            message = str(error) if isinstance(error, CheckpointInvalid) else "The checkpoint file cannot be read."
            self.stderr.write(message)
            sys.exit(1)
        report = ledger_verify(checkpoint=loaded)
        if not report.intact:
            self.stderr.write(report.finding.message)
            sys.exit(1)
        against = ""
        if loaded:
            kind = (f"the checkpoint of {loaded['created_at']} signed by key {loaded['key_id']}" if loaded["signed"]
                    else f"the legacy checkpoint of {loaded['created_at']} (MAC'd with the ledger key)")
            against = f", checked against {kind} ({report.checkpoint_subjects} chains)"
        self.stdout.write(f"The consent ledger is intact: {report.events} events in {report.subjects} chains, "
                          f"{report.states} current states{against} ({report.seconds:.1f} s).")
