#!/usr/bin/env python
"""Django's command-line utility for Tessera."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    from cdp.core.errors import ConfigurationError

    try:
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)
    except ConfigurationError as error:
        # One plain sentence, no traceback: see CONTRACT.md "Configuration".
        print(f"Configuration error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
