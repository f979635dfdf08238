from django.core.management.base import CommandError

from cdp.importers import purchases, transactions
from cdp.importers.common import ImportFormatError
from cdp.management.base import TesseraCommand
from cdp.management.commands.import_movielens import print_report
from cdp.services.imports import consent_basis_check, purchases_import, transactions_import


class Command(TesseraCommand):
    help = ("Import UCI Online Retail-shaped CSV file(s), or the `purchases` shape (customer_id date quantity "
            "amount): customers as profiles, lines as purchases.")

    def add_arguments(self, parser):
        parser.add_argument("--path", required=True, help="A CSV file or a directory of them.")
        parser.add_argument("--format", default="transactions", choices=["transactions", "purchases"])
        parser.add_argument("--source", default=None,
                            help="Source key (created if missing; default retail, or purchases).")
        parser.add_argument("--timezone", default="Europe/London", help="Time zone of InvoiceDate.")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")
        parser.add_argument("--consent", metavar="PURPOSES",
                            help="Record that the imported people granted these purposes (e.g. "
                                 "analytics,personalization), in the consent ledger; needs --evidence.")
        parser.add_argument("--evidence", metavar="TEXT",
                            help="Where and how that consent was collected (kept in the ledger with each decision).")

    def handle(self, *args, path, source, timezone, json: bool, consent, evidence, **options):
        try:
            basis = consent_basis_check(consent, evidence) if consent or evidence else None
            if options["format"] == "purchases":
                with self.progress(total=purchases.data_line_count(path), unit="line",
                                   desc="Importing purchases") as bar:
                    report = purchases_import(path=path, source_key=source or "purchases", consent=basis,
                                              on_progress=bar.update)
            else:
                with self.progress(total=transactions.data_line_count(path), unit="line",
                                   desc="Importing transactions") as bar:
                    report = transactions_import(path=path, source_key=source or "retail", timezone=timezone,
                                                 consent=basis, on_progress=bar.update)
        except (ImportFormatError, OSError) as error:
            raise CommandError(str(error)) from None
        print_report(self, report.as_dict(), as_json=json)
