from django.conf import settings
from django.contrib.auth import get_user_model

from cdp.demo.generator import SOURCES
from cdp.demo.loader import DEMO_STAFF, demo_write_key
from cdp.management.base import TesseraCommand
from cdp.models import Source
from cdp.services.sources import write_key_hash
from consent.services.signin import demo_sign_in_links


class Command(TesseraCommand):
    help = "Print where the running demo lives: URLs, demo staff log-ins and customers' sign-in links."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, port, **options):
        base = f"http://127.0.0.1:{port}"
        lines = [
            "",
            "Tessera is starting on " + base,
            f"  API docs        {base}/api/docs/",
            f"  OpenAPI schema  {base}/api/schema/",
            f"  Admin           {base}/admin/",
            f"  Health          {base}/healthz   {base}/readyz   {base}/metrics",
        ]
        if settings.DEBUG:
            users = get_user_model().objects.filter(username__in=[s["username"] for s in DEMO_STAFF])
            if users.exists():
                lines.append("Demo staff log-ins (development only):")
                for staff in DEMO_STAFF:
                    lines.append(f"  {staff['role']:<11} {staff['username']} / {staff['password']}")
            lines += self.demo_sources()
        for line in self.customer_links(base):
            lines.append(line)
        self.stdout.write("\n".join(lines) + "\n")

    def demo_sources(self) -> list[str]:
        """Demo sources with their development write keys (Segment's HTTP API, user name of
        Basic auth), those whose key is the fixed demo one only."""
        sources = [s for s in Source.objects.filter(key__in=[spec["key"] for spec in SOURCES]).order_by("key")
                   if s.write_key_hash == write_key_hash(demo_write_key(s.key))]
        if not sources:
            return []
        return ["Demo sources and their write keys (development only; `source` in the API, Basic auth user "
                "name on /v1/batch):"] + [f"  {s.key:<11} {demo_write_key(s.key)}" for s in sources]

    def customer_links(self, base: str) -> list[str]:
        links = demo_sign_in_links(base_url=base, count=3)
        return ["Demo customers' sign-in links:"] + [f"  {link}" for link in links]
