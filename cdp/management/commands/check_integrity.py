from django.core.management.base import CommandError

from cdp.integrity import dangling_references, unconstrained_relations
from cdp.management.base import TesseraCommand


class Command(TesseraCommand):
    help = ("Check that every reference the database does not enforce (records, identities, attribute "
            "values, events) points at a row that exists; exit 1 naming the relations that do not.")

    def handle(self, *args, **options):
        dangling = dangling_references()
        if dangling:
            raise CommandError("Dangling references: " + "; ".join(
                f"{relation} ({count} rows name a missing target)" for relation, count in sorted(dangling.items())))
        self.stdout.write(f"Intact: {len(unconstrained_relations())} relations checked, no dangling references.")
