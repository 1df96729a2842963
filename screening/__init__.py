"""Pre-treatment screening for microneedling: the app factory."""

from __future__ import annotations

from flask import Flask

from . import config
from .rules import load_rules


def create_app(test_config: dict | None = None) -> Flask:
    """Create the app: settings, the checked rules, and the CLI."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.update(config.from_environ())
    if test_config:
        app.config.update(test_config)
    # A broken rules file stops start-up here, naming each rule and line.
    app.extensions["screening_rules"] = load_rules(app.config["RULES_PATH"])

    from .cli import screening_cli

    app.cli.add_command(screening_cli)
    return app


def current_rules():
    """Return the rule set loaded by the current app."""
    from flask import current_app

    return current_app.extensions["screening_rules"]
