"""Pre-treatment screening for microneedling: the app factory."""

from __future__ import annotations

import base64
from pathlib import Path

from flask import Flask, current_app

from . import config
from .config import ROOT
from .crypto import Vault, VaultError
from .rules import RuleSet, load_rules


def create_app(test_config: dict | None = None) -> Flask:
    """Create the app: settings, the checked rules, the database, the questionnaire and the CLI."""
    app = Flask(__name__, instance_relative_config=True, template_folder=str(ROOT / "templates"),
                instance_path=str(ROOT / "instance"))
    app.config.update(config.from_environ())
    if test_config:
        app.config.update(test_config)
    config.finish(app.config, app.instance_path)
    try:
        app.extensions["screening_vault"] = Vault(app.config["ENCRYPTION_KEYS"], app.config["INDEX_KEY"])
    except VaultError as exc:
        raise config.ConfigError(str(exc)) from None
    if app.config["ENV"] == "production":
        config.check_production_secrets(app.config)  # after the vault has said whether the keys are Fernet keys
    config.check_rate_limit_storage(app.config)
    config.check_queue_and_mail(app.config, Path(app.instance_path))
    # A broken rules file stops start-up here, naming each rule and line.
    app.extensions["screening_rules"] = load_rules(app.config["RULES_PATH"])

    from .extensions import babel, csrf, db, limiter, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    csrf.init_app(app)
    _init_limiter(app, limiter)
    babel.init_app(app, default_domain="messages", default_translation_directories=str(ROOT / "translations"))
    from . import security

    security.init_app(app)  # headers on every response, the CSP nonce, the error pages

    from . import models  # noqa: F401 - the models must be known to Flask-Migrate
    from .clients import models as _client_models  # noqa: F401 - likewise
    from .cli import screening_cli
    from .questionnaire.views import bp as questionnaire_bp
    from .staff import views as staff_views
    from .staff.access import check_every_view_declares_roles
    from .appointments import cli as _appointment_cli  # noqa: F401 - its commands join `flask screening`
    from .appointments import views as _appointment_views  # noqa: F401 - its staff pages join the staff blueprint
    from .appointments.invitation import bp as invitation_bp
    from .clients import views as _client_views  # noqa: F401 - its staff pages join the staff blueprint

    app.register_blueprint(questionnaire_bp)
    app.register_blueprint(invitation_bp)
    from .clients.dayof import bp as dayof_bp

    app.register_blueprint(dayof_bp)
    from .appointments.api import bp as api_bp

    app.register_blueprint(api_bp)
    app.register_blueprint(staff_views.bp)
    check_every_view_declares_roles(app)
    app.cli.add_command(screening_cli)
    if app.config["CHECK_KEYS"]:
        from . import keycheck

        # Keys that do not open the database's key canary stop start-up here (exit status 4, as for a broken
        # rules file); a database out of reach is checked on the first request instead.
        keycheck.check_at_start(app)
        app.before_request(lambda: keycheck.check_on_request(app))

    _announce_mail_folder(app)

    @app.context_processor
    def clinic():
        settings = app.config["CLINIC"]
        return {"clinic": settings}

    from . import display

    # The clinic's clock (SCREENING_TIME_ZONE): every stored moment a person reads goes through these.
    app.add_template_filter(display.format_moment, "clinic_time")  # 29 March 2026, 01:30 BST
    app.add_template_filter(display.format_clock, "clinic_clock")  # 14:05 BST

    @app.template_filter("data_uri")
    def data_uri(data: bytes, mime: str) -> str:
        return f"data:{mime};base64,{base64.b64encode(data).decode()}"

    from . import logsafe

    logsafe.install(app)  # no error message (SQL, parameters, values) in the logs: types and frames only
    return app


def _announce_mail_folder(app: Flask) -> None:
    """On the development server (``flask run``), say in one line where email goes when no mail server is set."""
    import sys

    if not app.config["MAIL_URL"] and "run" in sys.argv[1:4] and "flask" in sys.argv[0]:
        print(f" * Email is not sent: every message is written to {app.config['MAIL_DIR']}/ "
              "(set SCREENING_MAIL_URL to send it)", file=sys.stderr)


def _init_limiter(app: Flask, limiter) -> None:
    """Bind Flask-Limiter to its store; refuse to start if the store is unusable or out of reach."""
    from limits.errors import ConfigurationError

    uri = str(app.config["RATELIMIT_STORAGE_URI"])
    shown = config._redacted(uri)
    try:
        limiter.init_app(app)
    except ConfigurationError as exc:
        raise config.ConfigError(f"SCREENING_RATELIMIT_STORAGE_URI={shown} cannot be used: {exc}") from None
    if uri.startswith("memory://"):
        return
    try:
        reachable = limiter.storage.check()
    except Exception:  # noqa: BLE001 - any failure to reach the store means the same thing here
        reachable = False
    if not reachable:
        raise config.ConfigError(f"cannot reach the rate-limit store SCREENING_RATELIMIT_STORAGE_URI={shown}: "
                                 "is Redis running there?")


def current_rules() -> RuleSet:
    """Return the rule set loaded by the current app."""
    return current_app.extensions["screening_rules"]
