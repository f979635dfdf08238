from cdp.management.base import TesseraCommand
from cdp.models import Assurance, SourceKind
from cdp.services.sources import source_create


class Command(TesseraCommand):
    help = "Create a source; prints its Segment write key on the last line (shown once)."

    def add_arguments(self, parser):
        parser.add_argument("key")
        parser.add_argument("--name", required=True)
        parser.add_argument("--kind", required=True, choices=SourceKind.values)
        parser.add_argument("--trust", required=True, type=int)
        parser.add_argument("--assurance", default=Assurance.ASSERTED, choices=Assurance.values,
                            help="How far its identifiers are trusted: verified (a server-side system that verified "
                                 "the address), asserted (other server-side systems; the default), client (write "
                                 "keys used in browsers and apps, which are public).")
        parser.add_argument("--time-zone", default="",
                            help="IANA time zone (e.g. Europe/Paris) in which its timestamps without an offset are "
                                 "read; default UTC.")

    def handle(self, *args, key, name, kind, trust, assurance, time_zone, **options):
        source, write_key = source_create(key=key, name=name, kind=kind, trust=trust, assurance=assurance,
                                          time_zone=time_zone)
        self.stderr.write(f"Created {source.kind} source '{source.key}' (trust {source.trust}, "
                          f"assurance {source.assurance}). "
                          "The write key below is shown once; store it now.")
        self.stdout.write(write_key)
