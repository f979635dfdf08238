import os
import sys
from importlib import import_module

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

# Import every view now (Django would on the first request): the first request of each
# worker is not ~0.5 s slower, and the views' objects are frozen with the rest below.
import_module(settings.ROOT_URLCONF)
gc_tune(settings.TESSERA_GC_GEN0_THRESHOLD)  # each server process, once the app is loaded
