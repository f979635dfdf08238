from cdp import crypto
from cdp.management.base import TesseraCommand


class Command(TesseraCommand):
    help = "Rewrap every data key under the active master key (resumable; a re-run changes nothing)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args, batch_size, **options):
        pending = crypto.data_keys_pending_rotation()
        with self.progress(total=pending, unit="key", desc="Rewrapping data keys") as bar:
            rotated = crypto.data_keys_rotate(batch_size=batch_size, on_progress=bar.update)
        self.stderr.write(f"Rewrapped {rotated} data keys under master key {crypto.keyring().active_id}.")
        self.stdout.write(str(rotated))
