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
