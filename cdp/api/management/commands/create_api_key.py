from cdp.api.services.api_keys import api_key_create
from cdp.core.http.scopes import SCOPES
from cdp.management.base import TesseraCommand


class Command(TesseraCommand):
    help = "Create an API key; prints the key on the last line (shown once, stored only as a hash)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--scopes", required=True, help=f"Comma-separated, from: {', '.join(SCOPES)}.")
        parser.add_argument("--source", help="Bind the key to this source: it can then write only as it.")
        parser.add_argument("--expires-days", type=int, help="The key stops working after this many days.")

    def handle(self, *args, name, scopes, source, expires_days, **options):
        key, plaintext = api_key_create(name=name, scopes=scopes, source_key=source, expires_days=expires_days,
                                        actor="cli:create_api_key")
        bound = f", bound to source '{key.source.key}'" if key.source_id else ""
        expiry = f", expiring {key.expires_at:%Y-%m-%d %H:%M} UTC" if key.expires_at else ""
        self.stderr.write(f"Created API key '{key.name}' (tsk_{key.prefix}) with scopes {', '.join(key.scopes)}"
                          f"{bound}{expiry}. The key below is shown once; store it now.")
        self.stdout.write(plaintext)
