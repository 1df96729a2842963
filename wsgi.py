"""The WSGI entry point: ``flask --app wsgi`` and gunicorn ``wsgi:app``."""

import sys

from screening import create_app
from screening.config import ConfigError
from screening.rules import RulesError

# Exit status 4 is gunicorn's "app failed to load": its master stops instead of booting new workers
# that would fail the same way, over and over.
CANNOT_START = 4

try:
    app = create_app()
except RulesError as exc:
    # Refuse to start, and say which rule and line is wrong.
    print(f"screening: cannot start, the rules file has {len(exc.problems)} problem(s):\n{exc}", file=sys.stderr)
    sys.exit(CANNOT_START)
except ConfigError as exc:
    print(f"screening: cannot start: {exc}", file=sys.stderr)
    sys.exit(CANNOT_START)
