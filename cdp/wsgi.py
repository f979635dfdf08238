import os
import sys

from django.core.wsgi import get_wsgi_application

from cdp.core.errors import ConfigurationError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")

try:
    application = get_wsgi_application()
except ConfigurationError as error:
    print(f"Configuration error: {error}", file=sys.stderr)
    sys.exit(1)

from django.conf import settings  # noqa: E402 (after the application has loaded them)

from cdp.core.gc_tuning import gc_tune  # noqa: E402

gc_tune(settings.TESSERA_GC_GEN0_THRESHOLD)  # each server process, once the app is loaded
