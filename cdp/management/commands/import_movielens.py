import json

from django.core.management.base import CommandError

from cdp.importers import movielens
from cdp.importers.common import ImportFormatError
from cdp.management.base import TesseraCommand
from cdp.services.imports import consent_basis_check, movielens_import


class Command(TesseraCommand):
    help = "Import MovieLens (u.data+u.item or ratings.csv+movies.csv): items, users as profiles, ratings."

    def add_arguments(self, parser):
        parser.add_argument("--path", required=True, help="Directory holding the MovieLens files.")
        parser.add_argument("--source", default="movielens", help="Source key (created if missing).")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")
        parser.add_argument("--consent", metavar="PURPOSES",
                            help="Record that the imported people granted these purposes (e.g. "
                                 "analytics,personalization), in the consent ledger; needs --evidence.")
        parser.add_argument("--evidence", metavar="TEXT",
                            help="Where and how that consent was collected (kept in the ledger with each decision).")

    def handle(self, *args, path, source, json: bool, consent, evidence, **options):
        try:
            basis = consent_basis_check(consent, evidence) if consent or evidence else None
            total = movielens.rating_line_count(path)
            with self.progress(total=total, unit="rating", desc="Importing ratings") as bar:
                report = movielens_import(path=path, source_key=source, consent=basis, on_progress=bar.update)
        except (ImportFormatError, OSError) as error:
            raise CommandError(str(error)) from None
        print_report(self, report.as_dict(), as_json=json)


def print_report(command, summary: dict, *, as_json: bool) -> None:
    if as_json:
        command.stdout.write(json_dumps(summary))
        return
    command.stdout.write(f"Loaded {summary['rows_loaded']} rows, rejected {summary['rows_rejected']}.")
    for reason, count in summary["rejected_by_reason"].items():
        command.stdout.write(f"  rejected {count:>8} {reason}")
    for kind in ("profiles", "events", "items"):
        if summary[kind]:
            parts = ", ".join(f"{status} {count}" for status, count in sorted(summary[kind].items()))
            command.stdout.write(f"{kind}: {parts}")
    if summary["consents_recorded"]:
        command.stdout.write(f"consent decisions recorded: {summary['consents_recorded']}")


def json_dumps(value) -> str:
    return json.dumps(value, sort_keys=True)
