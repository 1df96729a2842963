"""Settings read from SCREENING_* environment variables; no secret has a fallback."""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from pathlib import Path

from limits import parse_many

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """A setting is missing or unusable; the app refuses to start."""


DEFAULT_SENDER = "screening@localhost"  # development only: production with a mail server must name its own


def from_environ(environ=None) -> dict:
    """Return the app settings found in the environment (SCREENING_ prefix)."""
    env = os.environ if environ is None else environ
    out: dict = {
        "ENV": env.get("SCREENING_ENV", "development"),
        "RULES_PATH": env.get("SCREENING_RULES_PATH", str(ROOT / "rules.yaml")),
        "DRAFT_LIFETIME_HOURS": float(env.get("SCREENING_DRAFT_LIFETIME_HOURS", "24")),
        "CLINIC_NAME": env.get("SCREENING_CLINIC_NAME", "Your clinic"),
        "CLINIC_ACCENT": env.get("SCREENING_CLINIC_ACCENT", "#1d5f8a"),
        "CLINIC_LOGO": env.get("SCREENING_CLINIC_LOGO", ""),
        # How clients reach the clinic: shown on the start, confirmation and accessibility pages.
        "CLINIC_PHONE": env.get("SCREENING_CLINIC_PHONE", ""),
        "CLINIC_EMAIL": env.get("SCREENING_CLINIC_EMAIL", ""),
        "CLINIC_ADDRESS": env.get("SCREENING_CLINIC_ADDRESS", ""),
        # Where PDFs render after the submit commits: "queue" (a task for `flask screening worker`) or "0" (on
        # the first request for the PDF).
        "PDF_BACKGROUND": env.get("SCREENING_PDF_BACKGROUND", "queue"),
        # The task queue's storage (screening/tasks.py): empty for a SQLite file in instance/, sqlite:///PATH,
        # redis://HOST:6379/0 for several app servers, or "immediate" (tasks run at once in the caller: tests).
        "QUEUE_URL": env.get("SCREENING_QUEUE_URL", ""),
        # Email (screening/mail.py): smtp://user:pass@host:587 (STARTTLS when offered) or smtps://host:465; without
        # it every message is written to MAIL_DIR (default instance/mail/), which production must ask for itself.
        "MAIL_URL": env.get("SCREENING_MAIL_URL", ""),
        "MAIL_DIR": env.get("SCREENING_MAIL_DIR", ""),
        "MAIL_FROM": env.get("SCREENING_MAIL_FROM", ""),
        "BASE_URL": env.get("SCREENING_BASE_URL", "http://127.0.0.1:5000"),
        # A message that could not be sent is tried again after MAIL_RETRY_SECONDS, then twice as long each time up
        # to an hour, at most MAIL_MAX_ATTEMPTS times in all; then it is marked failed ("not delivered").
        "MAIL_RETRY_SECONDS": float(env.get("SCREENING_MAIL_RETRY_SECONDS", "60")),
        "MAIL_MAX_ATTEMPTS": int(env.get("SCREENING_MAIL_MAX_ATTEMPTS", "8")),
        "MAIL_TIMEOUT": float(env.get("SCREENING_MAIL_TIMEOUT", "20")),
        # Staff sessions: idle timeout and absolute lifetime.
        "STAFF_IDLE_MINUTES": float(env.get("SCREENING_STAFF_IDLE_MINUTES", "15")),
        "STAFF_SESSION_HOURS": float(env.get("SCREENING_STAFF_SESSION_HOURS", "12")),
        # Staff accounts (staff/people_services.py): an invitation link works this many hours, a password-reset
        # link this many minutes; the forgotten-password form is limited per network (Flask-Limiter syntax).
        "STAFF_INVITE_HOURS": float(env.get("SCREENING_STAFF_INVITE_HOURS", "72")),
        "PASSWORD_RESET_MINUTES": float(env.get("SCREENING_PASSWORD_RESET_MINUTES", "60")),
        "PASSWORD_RESET_LIMIT": env.get("SCREENING_PASSWORD_RESET_LIMIT", "5 per 15 minutes"),
        # Kiosk mode: a client's answers are cleared after this many seconds without activity.
        # Five minutes: people look up medicine names on a medical form.
        "KIOSK_IDLE_SECONDS": int(env.get("SCREENING_KIOSK_IDLE_SECONDS", "300")),
        # Two-factor sign-in (screening/staff/twofactor.py): the roles that must use a second factor (a passkey or an
        # authenticator app); "admin,practitioner,desk" requires it of the desk too. An account with a second
        # factor is always asked for it, whatever its roles.
        "TWO_FACTOR_ROLES": env.get("SCREENING_TWO_FACTOR_ROLES", "admin,practitioner"),
        # Failed sign-ins allowed per address and per account (Flask-Limiter syntax).
        "STAFF_LOGIN_LIMIT_ADDRESS": env.get("SCREENING_LOGIN_LIMIT_ADDRESS", "20 per 15 minutes"),
        "STAFF_LOGIN_LIMIT_ACCOUNT": env.get("SCREENING_LOGIN_LIMIT_ACCOUNT", "5 per 15 minutes"),
        # Failed sign-ins allowed per account from all addresses together (a distributed guessing attack).
        "STAFF_LOGIN_LIMIT_ACCOUNT_ALL": env.get("SCREENING_LOGIN_LIMIT_ACCOUNT_ALL", "50 per 15 minutes"),
        # Where the public form's limits count (Flask-Limiter): memory:// counts per process, so production
        # refuses it unless SCREENING_SINGLE_PROCESS=1 says that one process alone serves the app; with several
        # workers use redis://127.0.0.1:6379. Failed sign-ins are counted in the database (the audit trail).
        "RATELIMIT_STORAGE_URI": env.get("SCREENING_RATELIMIT_STORAGE_URI", "memory://"),
        "SINGLE_PROCESS": env.get("SCREENING_SINGLE_PROCESS", "") in ("1", "true", "yes"),
        # Database time-outs, all shorter than gunicorn's worker time-out (30 s by default), so that a hung
        # database gets the app's own 503 page, not a killed worker: waiting for a connection from the pool,
        # opening one, and one statement (PostgreSQL; on SQLite, waiting for a lock: the busy time-out).
        "DB_POOL_TIMEOUT": float(env.get("SCREENING_DB_POOL_TIMEOUT", "5")),
        "DB_CONNECT_TIMEOUT": int(env.get("SCREENING_DB_CONNECT_TIMEOUT", "5")),
        "DB_STATEMENT_TIMEOUT": float(env.get("SCREENING_DB_STATEMENT_TIMEOUT", "10")),
        # Questionnaires started and sent per client address (kiosk tablets are exempt; Flask-Limiter syntax).
        "START_LIMIT": env.get("SCREENING_START_LIMIT", "30 per hour"),
        "SUBMIT_LIMIT": env.get("SCREENING_SUBMIT_LIMIT", "20 per hour"),
        # Reverse proxies in front of the app whose X-Forwarded-For/-Proto headers are trusted (0: none).
        "PROXY_COUNT": int(env.get("SCREENING_PROXY_COUNT", "0")),
        # How long submissions are kept before `flask screening purge` deletes them, counted from the day
        # they were submitted. 8 years: the Records Management Code of Practice for Health and Social Care
        # (England, 2021) keeps adult health records 8 years after the last treatment; a clinic may keep
        # longer (insurer, other UK nations' guidance), never shorter without a reason.
        "RETENTION_YEARS": int(env.get("SCREENING_RETENTION_YEARS", "8")),
        # Requests per booking system's token to the appointments API (Flask-Limiter syntax).
        "API_LIMIT": env.get("SCREENING_API_LIMIT", "300 per minute"),
        # Invitations (screening.appointments): a link works until the end of the appointment day plus this many
        # days; reminders go this many days before the appointment, until the screening is sent.
        "INVITATION_GRACE_DAYS": int(env.get("SCREENING_INVITATION_GRACE_DAYS", "0")),
        "REMINDER_DAYS": tuple(int(d) for d in env.get("SCREENING_REMINDER_DAYS", "3,1").replace(" ", "").split(",")
                               if d),
        # Least privilege: the desk prints a desk sheet (no health data) unless the clinic lets it print the
        # practitioner's full PDF; the client is told which (templates read it).
        "DESK_FULL_PDF": env.get("SCREENING_DESK_FULL_PDF", "") in ("1", "true", "yes"),
        # The keys are checked against the database's key canary at start-up (keycheck.py); set while a new
        # SCREENING_INDEX_KEY is brought in by `rotate-keys`.
        "CHECK_KEYS": env.get("SCREENING_CHECK_KEYS", "1") not in ("0", "false", "no"),
        "INDEX_KEY_CHANGED": env.get("SCREENING_INDEX_KEY_CHANGED", "") in ("1", "true", "yes"),
        # A PDF whose rendering failed is tried again after this many seconds, then twice as long each time up to
        # the maximum (tasks.render_pdf); the worker's sweep (every minute) catches a PDF whose task was lost.
        "PDF_RETRY_SECONDS": float(env.get("SCREENING_PDF_RETRY_SECONDS", "30")),
        "PDF_RETRY_MAX_SECONDS": float(env.get("SCREENING_PDF_RETRY_MAX_SECONDS", "900")),
        # The clinic's time zone (an IANA name such as Europe/London): every time a person reads is shown in it,
        # and "today" is the clinic's today; storage stays UTC (screening/clock.py).
        "TIME_ZONE": env.get("SCREENING_TIME_ZONE", "") or "UTC",
    }
    if env.get("SCREENING_SECRET_KEY"):
        out["SECRET_KEY"] = env["SCREENING_SECRET_KEY"]
    # Encryption at rest: Fernet keys, comma-separated, newest first (older ones only decrypt), and the
    # separate key of the blind indexes that staff search by name and date of birth.
    if env.get("SCREENING_ENCRYPTION_KEYS"):
        out["ENCRYPTION_KEYS"] = [k.strip() for k in env["SCREENING_ENCRYPTION_KEYS"].split(",") if k.strip()]
    if env.get("SCREENING_INDEX_KEY"):
        out["INDEX_KEY"] = env["SCREENING_INDEX_KEY"]
    if env.get("SCREENING_DATABASE_URL"):
        out["SQLALCHEMY_DATABASE_URI"] = env["SCREENING_DATABASE_URL"]
    return out


def finish(config, instance_path: str) -> None:
    """Fill derived settings and refuse unusable ones (raises ConfigError)."""
    instance = Path(instance_path)
    from .crypto import new_key

    for name, env_name, make in (("SECRET_KEY", "SCREENING_SECRET_KEY", lambda: secrets.token_hex(32)),
                                 ("ENCRYPTION_KEYS", "SCREENING_ENCRYPTION_KEYS", new_key),
                                 ("INDEX_KEY", "SCREENING_INDEX_KEY", new_key)):
        if not config.get(name):
            if config["ENV"] == "production":
                raise ConfigError(f"{env_name} must be set in production")
            # Development only: a key generated once into instance/ (never in the repository).
            value = _instance_secret(instance / name.lower(), make)
            config[name] = [value] if name == "ENCRYPTION_KEYS" else value
    uri = config.get("SQLALCHEMY_DATABASE_URI") or ""
    if uri.startswith(("postgresql://", "postgres://")):
        # The driver this project installs is psycopg 3.
        config["SQLALCHEMY_DATABASE_URI"] = "postgresql+psycopg://" + uri.split("://", 1)[1]
    if not config.get("SQLALCHEMY_DATABASE_URI"):
        instance.mkdir(parents=True, exist_ok=True)
        config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance / 'screening.db'}"
    config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(config)
    private_sqlite_file(config["SQLALCHEMY_DATABASE_URI"])
    lifetime = dt.timedelta(hours=float(config["DRAFT_LIFETIME_HOURS"]))
    config["DRAFT_LIFETIME"] = lifetime
    config["PERMANENT_SESSION_LIFETIME"] = lifetime
    config["SESSION_COOKIE_HTTPONLY"] = True
    config["SESSION_COOKIE_SAMESITE"] = "Lax"
    config["SESSION_COOKIE_SECURE"] = config["ENV"] == "production"
    if config["ENV"] == "production":
        # The __Host- prefix: the browser keeps the cookie only if it is Secure, for this host alone, path /.
        config["SESSION_COOKIE_NAME"] = "__Host-session"
    config["MAX_CONTENT_LENGTH"] = 256 * 1024
    # If the rate-limit store (Redis) fails while the app runs, the public form goes on working without its
    # limits (and Flask-Limiter logs it) rather than answering 500; sign-in failures are counted in the database.
    config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    if str(config["RATELIMIT_STORAGE_URI"]).startswith(("redis://", "rediss://")):
        # A Redis that does not answer costs a request 2 s at most, never the worker.
        config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_connect_timeout": 2, "socket_timeout": 2})
    for name in ("START_LIMIT", "SUBMIT_LIMIT", "STAFF_LOGIN_LIMIT_ADDRESS", "STAFF_LOGIN_LIMIT_ACCOUNT",
                 "STAFF_LOGIN_LIMIT_ACCOUNT_ALL", "PASSWORD_RESET_LIMIT"):
        try:
            parse_many(str(config[name]))
        except ValueError:
            raise ConfigError(f"a rate limit must read like '30 per hour', not {config[name]!r} ({name})") from None
    mode = {True: "queue", False: "0", "1": "queue"}.get(config["PDF_BACKGROUND"], config["PDF_BACKGROUND"])
    if mode not in ("queue", "0"):
        raise ConfigError(f"SCREENING_PDF_BACKGROUND must be queue or 0, not {mode!r}")
    config["PDF_BACKGROUND"] = mode
    for name in ("KIOSK_IDLE_SECONDS", "STAFF_IDLE_MINUTES", "STAFF_SESSION_HOURS", "DRAFT_LIFETIME_HOURS",
                 "RETENTION_YEARS", "STAFF_INVITE_HOURS", "PASSWORD_RESET_MINUTES"):
        if float(config[name]) <= 0:
            raise ConfigError(f"SCREENING_{name} must be above 0, not {config[name]}")
    config["STAFF_IDLE"] = dt.timedelta(minutes=float(config["STAFF_IDLE_MINUTES"]))
    roles = config.get("TWO_FACTOR_ROLES", "admin,practitioner")
    roles = roles.split(",") if isinstance(roles, str) else list(roles)
    roles = tuple(sorted({r.strip() for r in roles if r.strip()}))
    if set(roles) - {"admin", "practitioner", "desk"}:
        raise ConfigError(f"SCREENING_TWO_FACTOR_ROLES must list roles among admin, practitioner and desk, "
                          f"not {config['TWO_FACTOR_ROLES']!r}")
    config["TWO_FACTOR_ROLES"] = roles
    config["STAFF_LIFETIME"] = dt.timedelta(hours=float(config["STAFF_SESSION_HOURS"]))
    # Where each role starts after sign-in, in order of preference.
    config.setdefault("STAFF_HOMES", [("staff.submissions", "practitioner"), ("staff.desk", "desk"),
                                      ("staff.audit_trail", "admin")])
    config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # the token lives as long as the session
    # Pages send Referrer-Policy: no-referrer, so an HTTPS POST carries no Referer for Flask-WTF to check.
    config.setdefault("WTF_CSRF_SSL_STRICT", False)
    from .clock import UnknownTimeZone, load_zone

    try:
        config["TIME_ZONE_INFO"] = load_zone(str(config.get("TIME_ZONE") or "UTC"))
    except UnknownTimeZone:
        raise ConfigError(f"SCREENING_TIME_ZONE must be a time zone name from the IANA database like Europe/London "
                          f"or UTC, not {config.get('TIME_ZONE')!r}") from None
    accent = config["CLINIC_ACCENT"]
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", accent):
        raise ConfigError(f"SCREENING_CLINIC_ACCENT must be a colour like #1d5f8a, not {accent!r}")
    ratio = contrast(accent, "#ffffff")
    if ratio < 4.5:
        raise ConfigError(f"SCREENING_CLINIC_ACCENT {accent} has a contrast of {ratio:.2f}:1 with white text; "
                          "WCAG AA needs 4.5:1, choose a darker colour")
    logo = config["CLINIC_LOGO"]
    logo_bytes, logo_type = None, None
    if logo:
        path = Path(logo)
        types = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
        if path.suffix.lower() not in types or not path.is_file():
            raise ConfigError(f"SCREENING_CLINIC_LOGO must be a PNG, JPEG or SVG file; cannot use {logo!r}")
        logo_bytes, logo_type = path.read_bytes(), types[path.suffix.lower()]
    email = config.get("CLINIC_EMAIL", "")
    if email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise ConfigError(f"SCREENING_CLINIC_EMAIL must be an email address like desk@clinic.example, not {email!r}")
    config["CLINIC"] = {"name": config["CLINIC_NAME"], "accent": accent, "logo": logo_bytes,
                        "logo_type": logo_type, "phone": config.get("CLINIC_PHONE", ""), "email": email,
                        "address": config.get("CLINIC_ADDRESS", "")}


def check_queue_and_mail(config, instance: Path) -> None:
    """Fill the queue's and the mail's defaults; refuse an unusable address, or production without a mail server.

    Called by the app factory after the production key checks, so that a missing key is reported first.
    """
    queue = str(config.get("QUEUE_URL") or "")
    if not queue:
        config["QUEUE_URL"] = f"sqlite:///{instance / 'queue.db'}"
    elif not queue.startswith(("sqlite:///", "redis://", "rediss://")) and queue != "immediate":
        raise ConfigError(f"SCREENING_QUEUE_URL must be sqlite:///PATH, redis://HOST:PORT/DB or empty, "
                          f"not {_redacted(queue)!r}")
    elif queue == "immediate" and config["ENV"] == "production" and not config.get("TESTING"):
        raise ConfigError("SCREENING_QUEUE_URL=immediate is for tests: the submit would wait for its PDF")
    mail = str(config.get("MAIL_URL") or "")
    if mail and not re.fullmatch(r"smtps?://([^@/]*@)?[^@/:]+(:\d+)?/?", mail):
        raise ConfigError(f"SCREENING_MAIL_URL must read like smtp://user:password@host:587 or smtps://host:465, "
                          f"not {_redacted(mail)!r}")
    if not mail and config["ENV"] == "production" and not config.get("MAIL_DIR"):
        raise ConfigError("SCREENING_MAIL_URL must be set in production (smtp://user:password@host:587), or "
                          "SCREENING_MAIL_DIR to write every message to a folder instead of sending it")
    config["MAIL_DIR"] = str(config.get("MAIL_DIR") or instance / "mail")
    sender = str(config.get("MAIL_FROM") or "")
    # The default is accepted again: finish() runs on settings it has finished before (an app made from another's).
    if sender and sender != DEFAULT_SENDER and not re.fullmatch(r"([^<>]*<)?[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+>?", sender):
        raise ConfigError(f"SCREENING_MAIL_FROM must be an address like desk@clinic.example, not {sender!r}")
    if not sender and config["ENV"] == "production" and mail:
        raise ConfigError("SCREENING_MAIL_FROM must be set in production when SCREENING_MAIL_URL is")
    config["MAIL_FROM"] = sender or DEFAULT_SENDER
    if not re.fullmatch(r"https?://[^/\s]+(/\S*)?", str(config["BASE_URL"])):
        raise ConfigError(f"SCREENING_BASE_URL must be the site's address like https://screening.clinic.example, "
                          f"not {config['BASE_URL']!r}")
    config["BASE_URL"] = str(config["BASE_URL"]).rstrip("/")
    if float(config["MAIL_RETRY_SECONDS"]) <= 0 or int(config["MAIL_MAX_ATTEMPTS"]) < 1:
        raise ConfigError("SCREENING_MAIL_RETRY_SECONDS must be above 0 and SCREENING_MAIL_MAX_ATTEMPTS at least 1")


def engine_options(config) -> dict:
    """Return SQLAlchemy's engine options: the database time-outs, and no parameters in error messages.

    The options given in the settings (tests) are kept; their ``connect_args`` are added to, not replaced.
    """
    options = dict(config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    # An error's text never carries the statement's values (they may be answers); see logsafe.py for the rest.
    options.setdefault("hide_parameters", True)
    connect = dict(options.get("connect_args") or {})
    uri = str(config["SQLALCHEMY_DATABASE_URI"])
    for name in ("DB_POOL_TIMEOUT", "DB_CONNECT_TIMEOUT", "DB_STATEMENT_TIMEOUT"):
        if float(config[name]) <= 0:
            raise ConfigError(f"SCREENING_{name} must be above 0 seconds, not {config[name]}")
    if uri.startswith("postgresql"):
        options.setdefault("pool_timeout", float(config["DB_POOL_TIMEOUT"]))
        connect.setdefault("connect_timeout", int(config["DB_CONNECT_TIMEOUT"]))
        statement_ms = int(float(config["DB_STATEMENT_TIMEOUT"]) * 1000)
        # The server cancels a statement (or a wait for a lock) that runs longer than this.
        wanted = f"-c statement_timeout={statement_ms} -c lock_timeout={statement_ms}"
        connect["options"] = f"{wanted} {connect['options']}" if connect.get("options") else wanted
        # A connection whose server stops acknowledging (a network cut) fails instead of hanging.
        connect.setdefault("keepalives", 1)
        connect.setdefault("keepalives_idle", 10)
        connect.setdefault("keepalives_interval", 5)
        connect.setdefault("keepalives_count", 2)
        connect.setdefault("tcp_user_timeout", statement_ms)
    elif uri.startswith("sqlite"):
        # How long a writer waits for SQLite's lock before "database is locked" (then the app's 503).
        connect.setdefault("timeout", float(config["DB_STATEMENT_TIMEOUT"]))
    if connect:
        options["connect_args"] = connect
    return options


def private_sqlite_file(uri: str) -> None:
    """Create a SQLite database file readable by its owner only (0600) before SQLite creates it 0644.

    SQLite gives its -wal and -shm files the database file's permissions. An existing file is narrowed to 0600.
    """
    from sqlalchemy.engine import make_url

    try:
        url = make_url(uri)
    except Exception:  # noqa: BLE001 - SQLAlchemy reports a bad URL itself when it connects
        return
    name = url.database or ""
    if not url.drivername.startswith("sqlite") or not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(name)
    if not path.parent.is_dir():
        return
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # an empty file is an empty database
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except OSError:
        return  # not ours to change (or read-only): SQLite reports what matters when it opens it


def _redacted(uri: str) -> str:
    """Return a storage address without its password."""
    return re.sub(r"//[^/@]*@", "//***@", uri)


def _gunicorn_workers() -> int:
    """Return how many worker processes serve the app, as far as can be told (1 when unknown).

    gunicorn reads ``WEB_CONCURRENCY`` and ``GUNICORN_CMD_ARGS``; a worker is forked from its master, so
    ``sys.argv`` is the master's command line. A worker count set in a gunicorn config file is not seen.
    """
    import shlex
    import sys

    workers = int(os.environ.get("WEB_CONCURRENCY") or 1)
    if not sys.argv or "gunicorn" not in sys.argv[0]:
        return workers
    args = shlex.split(os.environ.get("GUNICORN_CMD_ARGS", "")) + sys.argv[1:]
    for i, arg in enumerate(args):
        value = None
        if arg in ("-w", "--workers") and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--workers="):
            value = arg.split("=", 1)[1]
        elif arg.startswith("-w") and arg[2:].isdigit():
            value = arg[2:]
        if value and value.isdigit():
            workers = int(value)
    return workers


def check_rate_limit_storage(config) -> None:
    """Refuse per-process (memory://) counters in production unless one process alone serves the app."""
    uri = str(config["RATELIMIT_STORAGE_URI"])
    if not uri.startswith("memory://") or config["ENV"] != "production":
        return
    if not config.get("SINGLE_PROCESS"):
        raise ConfigError(
            "SCREENING_RATELIMIT_STORAGE_URI is memory://, which counts in each process separately: with several "
            "workers (or --max-requests restarts) the public form's limits do not hold. Set "
            "SCREENING_RATELIMIT_STORAGE_URI=redis://127.0.0.1:6379, or SCREENING_SINGLE_PROCESS=1 if exactly one "
            "process serves the app")
    workers = _gunicorn_workers()
    if workers > 1:
        raise ConfigError(f"SCREENING_SINGLE_PROCESS=1 is set but gunicorn runs {workers} workers: "
                          "set SCREENING_RATELIMIT_STORAGE_URI=redis://127.0.0.1:6379")


# Production keys: long enough, random-looking, and each used for one purpose only.
MIN_SECRET_LENGTH = 32
MIN_DISTINCT = 12  # a random 32-character key has ~25 distinct characters; "aaaa..." or "abcabc..." has few


def _weak(text: str) -> bool:
    return len(text) < MIN_SECRET_LENGTH or len(set(text)) < MIN_DISTINCT


def check_production_secrets(config) -> None:
    """Refuse a short or low-entropy secret key, a weak encryption or index key, and a key used twice."""
    import base64
    import binascii

    secret = str(config["SECRET_KEY"])
    if _weak(secret):
        raise ConfigError(f"SCREENING_SECRET_KEY must be at least {MIN_SECRET_LENGTH} random characters "
                          "(make one with `flask --app wsgi screening new-key`)")
    index = str(config["INDEX_KEY"])
    if _weak(index):
        raise ConfigError(f"SCREENING_INDEX_KEY must be at least {MIN_SECRET_LENGTH} random characters "
                          "(make one with `flask --app wsgi screening new-key`)")
    keys = [str(k) for k in config["ENCRYPTION_KEYS"]]
    for n, key in enumerate(keys, 1):
        try:
            raw = base64.urlsafe_b64decode(key.encode())
        except (binascii.Error, ValueError):
            continue  # not a Fernet key at all: the vault refuses it with its own message
        if len(raw) == 32 and len(set(raw)) < 16:  # 32 random bytes have ~30 distinct values
            raise ConfigError(f"SCREENING_ENCRYPTION_KEYS: key {n} is not random (make one with "
                              "`flask --app wsgi screening new-key`)")
    if len(set(keys)) != len(keys):
        raise ConfigError("SCREENING_ENCRYPTION_KEYS lists the same key twice")
    names = {"SCREENING_SECRET_KEY": [secret], "SCREENING_INDEX_KEY": [index], "SCREENING_ENCRYPTION_KEYS": keys}
    seen: dict[str, str] = {}
    for name, values in names.items():
        for value in values:
            if value in seen and seen[value] != name:
                raise ConfigError(f"{seen[value]} and {name} use the same key: each needs its own "
                                  "(make them with `flask --app wsgi screening new-key`)")
            seen[value] = name


def _instance_secret(path: Path, make) -> str:
    """Return the secret kept in ``path``, creating it first if needed (safe when several workers start at once)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        temporary.write_text(make())
        temporary.chmod(0o600)
        try:
            os.link(temporary, path)  # atomic: exactly one process's key wins
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return path.read_text().strip()


def _luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    """Return the WCAG contrast ratio of two #rrggbb colours."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)
