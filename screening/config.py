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
        # Where PDFs render after the submit commits: "thread" (a niced renderer thread in each app
        # process), "worker" (a separate `flask screening render-pdfs --watch` process) or "0" (on the
        # first request for the PDF). "1" means "thread".
        "PDF_BACKGROUND": env.get("SCREENING_PDF_BACKGROUND", "thread"),
        # Staff sessions: idle timeout and absolute lifetime.
        "STAFF_IDLE_MINUTES": float(env.get("SCREENING_STAFF_IDLE_MINUTES", "15")),
        "STAFF_SESSION_HOURS": float(env.get("SCREENING_STAFF_SESSION_HOURS", "12")),
        # Kiosk mode: a client's answers are cleared after this many seconds without activity.
        "KIOSK_IDLE_SECONDS": int(env.get("SCREENING_KIOSK_IDLE_SECONDS", "120")),
        # Failed sign-ins allowed per address and per account (Flask-Limiter syntax).
        "STAFF_LOGIN_LIMIT_ADDRESS": env.get("SCREENING_LOGIN_LIMIT_ADDRESS", "20 per 15 minutes"),
        "STAFF_LOGIN_LIMIT_ACCOUNT": env.get("SCREENING_LOGIN_LIMIT_ACCOUNT", "5 per 15 minutes"),
        # memory:// counts per process; use redis://127.0.0.1:6379 when several workers serve the app.
        "RATELIMIT_STORAGE_URI": env.get("SCREENING_RATELIMIT_STORAGE_URI", "memory://"),
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
    for name in ("START_LIMIT", "SUBMIT_LIMIT", "STAFF_LOGIN_LIMIT_ADDRESS", "STAFF_LOGIN_LIMIT_ACCOUNT"):
        try:
            parse_many(str(config[name]))
        except ValueError:
            raise ConfigError(f"a rate limit must read like '30 per hour', not {config[name]!r} ({name})") from None
    mode = {True: "thread", False: "0", "1": "thread"}.get(config["PDF_BACKGROUND"], config["PDF_BACKGROUND"])
    if mode not in ("thread", "worker", "0"):
        raise ConfigError(f"SCREENING_PDF_BACKGROUND must be thread, worker or 0, not {mode!r}")
    config["PDF_BACKGROUND"] = mode
    for name in ("KIOSK_IDLE_SECONDS", "STAFF_IDLE_MINUTES", "STAFF_SESSION_HOURS", "DRAFT_LIFETIME_HOURS",
                 "RETENTION_YEARS"):
        if float(config[name]) <= 0:
            raise ConfigError(f"SCREENING_{name} must be above 0, not {config[name]}")
    config["STAFF_IDLE"] = dt.timedelta(minutes=float(config["STAFF_IDLE_MINUTES"]))
    config["STAFF_LIFETIME"] = dt.timedelta(hours=float(config["STAFF_SESSION_HOURS"]))
    # Where each role starts after sign-in, in order of preference.
    config.setdefault("STAFF_HOMES", [("staff.submissions", "practitioner"), ("staff.desk", "desk"),
                                      ("staff.audit_trail", "admin")])
    config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # the token lives as long as the session
    # Pages send Referrer-Policy: no-referrer, so an HTTPS POST carries no Referer for Flask-WTF to check.
    config.setdefault("WTF_CSRF_SSL_STRICT", False)
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
    config["CLINIC"] = {"name": config["CLINIC_NAME"], "accent": accent, "logo": logo_bytes,
                        "logo_type": logo_type}


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
