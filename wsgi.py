"""The WSGI entry point: ``flask --app wsgi`` and gunicorn ``wsgi:app``."""

import sys

from screening import create_app
from screening.config import ConfigError
from screening.rules import RulesError

try:
    app = create_app()
except RulesError as exc:
    # Refuse to start, and say which rule and line is wrong.
    sys.exit(f"screening: cannot start, the rules file has {len(exc.problems)} problem(s):\n{exc}")
except ConfigError as exc:
    sys.exit(f"screening: cannot start: {exc}")
