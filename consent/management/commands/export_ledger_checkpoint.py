import sys

from django.core.management.base import BaseCommand

from consent.ledger import ledger_checkpoint_create
from consent.services.checkpoints import ledger_checkpoint_write


class Command(BaseCommand):
    help = ("Snapshot every consent chain head into a checkpoint (JSON Lines, MAC'd with the ledger key). Keep it "
            "outside the database: verify_consent_ledger --checkpoint FILE then finds chains deleted whole or "
            "rolled back. Without --output the checkpoint itself is printed.")

    def add_arguments(self, parser):
        parser.add_argument("--output", metavar="FILE", help="Write the checkpoint here; the path is printed.")

    def handle(self, *args, output=None, **options):
        if output:
            try:
                path = ledger_checkpoint_write(path=output)
            except OSError:
                self.stderr.write("The checkpoint file could not be written.")
                sys.exit(1)
            self.stderr.write("Checkpoint written.")
            self.stdout.write(path)
            return
        _, text = ledger_checkpoint_create()
        self.stdout.write(text, ending="")
