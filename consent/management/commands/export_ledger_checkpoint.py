import sys

from django.core.management.base import BaseCommand

from consent.ledger import CheckpointKeyMissing, ledger_checkpoint_create
from consent.services.checkpoints import ledger_checkpoint_write


class Command(BaseCommand):
    help = ("Snapshot every consent chain head and the configuration history into a checkpoint (JSON Lines, "
            "signed with TESSERA_CHECKPOINT_SIGNING_KEY). Keep it outside the database: verify_consent_ledger then "
            "finds chains deleted whole, rolled back or rewritten. Without --output the checkpoint is printed.")

    def add_arguments(self, parser):
        parser.add_argument("--output", metavar="FILE", help="Write the checkpoint here; the path is printed.")

    def handle(self, *args, output=None, **options):
        try:
            if output:
                path = ledger_checkpoint_write(path=output)
                self.stderr.write("Checkpoint written.")
                self.stdout.write(path)
                return
            _, text = ledger_checkpoint_create()
        except CheckpointKeyMissing as error:
            self.stderr.write(str(error))
            sys.exit(1)
        except OSError:
            self.stderr.write("The checkpoint file could not be written.")
            sys.exit(1)
        self.stdout.write(text, ending="")
