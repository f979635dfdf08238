from cdp.management.base import TesseraCommand
from cdp.models import SourceKind
from cdp.services.sources import source_create


class Command(TesseraCommand):
    help = "Create a source; prints its Segment write key on the last line (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("key")
        parser.add_argument("--name", required=True)
        parser.add_argument("--kind", required=True, choices=SourceKind.values)
        parser.add_argument("--trust", required=True, type=int)

    def handle(self, *args, key, name, kind, trust, **options):
        source, write_key = source_create(key=key, name=name, kind=kind, trust=trust)
        self.stderr.write(f"Created {source.kind} source '{source.key}' (trust {source.trust}). "
                          "The write key below is shown once; store it now.")
        self.stdout.write(write_key)
