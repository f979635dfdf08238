from django.core.management.base import CommandError

from cdp.demo.loader import DEMO_STEPS, demo_load
from cdp.management.base import TesseraCommand


class Command(TesseraCommand):
    help = "Load the deterministic demo data set (same seed, same data; re-running changes nothing)."

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=3000)
        parser.add_argument("--seed", type=int, default=42)

    def handle(self, *args, customers, seed, **options):
        if customers < 1:
            raise CommandError("--customers must be at least 1.")
        with self.progress(total=DEMO_STEPS, unit="step", desc="Loading demo data") as bar:
            report = demo_load(customers=customers, seed=seed, on_progress=bar.update)
        self.stdout.write(
            f"Demo data (seed {seed}, {customers} customers): "
            f"sources created {report.sources_created}; items {fmt(report.items)}; "
            f"records {fmt(report.records)}; events {fmt(report.events)}; "
            f"consent changes {report.consents_changed}; demo staff created {report.staff_created}."
        )


def fmt(counts: dict) -> str:
    return ", ".join(f"{status} {count}" for status, count in sorted(counts.items())) or "none"
