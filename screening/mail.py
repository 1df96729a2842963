"""Email: compose a message from a template, queue it in the outbox, deliver it (SMTP, or a folder in development).

Only this module sends mail. A message is composed here (``compose``), stored encrypted in the ``outbox`` table
in the caller's transaction (``queue``), and sent by the worker once that transaction commits (``deliver``, run
by ``tasks.send_mail``). No address and no message text is ever logged.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import logging
import os
import re
import secrets
import smtplib
import ssl
import tempfile
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from flask import current_app, render_template
from sqlalchemy import event, update
from sqlalchemy.orm import Session

from .models import Outbox, utcnow

log = logging.getLogger(__name__)

# A worker that claimed a message owns it this long; after that (a worker killed mid-send) the sweep retries it.
LEASE = dt.timedelta(minutes=5)
RETRY_CAP_SECONDS = 3600.0
ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:]+@[^\s<>()\[\]\"',;:]+")


# -- composing ------------------------------------------------------------------------------


def link(endpoint: str, **values) -> str:
    """Return the absolute address of ``endpoint`` on SCREENING_BASE_URL (no request needed)."""
    base = urlsplit(current_app.config["BASE_URL"])
    adapter = current_app.url_map.bind(base.netloc, script_name=base.path or "/", url_scheme=base.scheme)
    return adapter.build(endpoint, values, force_external=True)


def compose(template: str, to: str, **context) -> EmailMessage:
    """Render ``templates/mail/<template>.txt`` (first line: the subject) and ``.html`` into one message to ``to``."""
    config = current_app.config
    context = {"clinic": config["CLINIC"], "base_url": config["BASE_URL"], "link": link, **context}
    subject, _, text = render_template(f"mail/{template}.txt", **context).lstrip().partition("\n")
    html = render_template(f"mail/{template}.html", subject=subject.strip(), **context)
    sender = config["MAIL_FROM"]
    message = EmailMessage()
    message["Subject"] = subject.strip()
    message["From"] = sender if "<" in sender else formataddr((config["CLINIC"]["name"], sender))
    message["To"] = to
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip(">") or "localhost")
    message.set_content(text.strip() + "\n")
    message.add_alternative(html, subtype="html")
    return message


# -- the outbox -----------------------------------------------------------------------------


def queue(session: Session, message: EmailMessage, *, kind: str, appointment_id: int | None = None) -> Outbox:
    """Add ``message`` to the outbox in the caller's transaction (no commit); it is sent once the caller commits."""
    row = Outbox(uid=secrets.token_hex(16), kind=kind, appointment_id=appointment_id,
                 message=message.as_bytes(policy=email.policy.SMTP), status="queued", attempts=0,
                 created_at=utcnow(), next_attempt_at=utcnow())
    session.add(row)
    session.flush()  # the id, for the task queued after the commit
    _session_of(session).info.setdefault("screening_outbox", []).append(row.id)
    return row


def _session_of(session) -> Session:
    return session() if callable(session) else session  # a scoped session (db.session) names the real one


@event.listens_for(Session, "after_commit")
def _enqueue_committed(session: Session) -> None:
    """Once the transaction that queued messages commits, hand each to the worker (never raises: the sweep is there)."""
    ids = session.info.pop("screening_outbox", None)
    if ids:
        from . import tasks

        for outbox_id in ids:
            tasks.enqueue_mail(outbox_id)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop("screening_outbox", None)


@dataclass
class Outcome:
    """What one delivery did: ``sent``, ``retry`` (in ``retry_in`` seconds), ``failed`` or ``skipped``."""

    status: str
    retry_in: float | None = None
    reason: str | None = None


class TemporaryFailure(Exception):
    """The message may go through later (server down, 4xx)."""


class PermanentFailure(Exception):
    """The message will never go through (5xx)."""


def deliver(session: Session, outbox_id: int) -> Outcome:
    """Claim one queued message (no other worker can then send it), send it, and record how it went."""
    config = current_app.config
    now = utcnow()
    claimed = session.execute(
        update(Outbox)
        .where(Outbox.id == outbox_id, Outbox.status.in_(("queued", "sending")), Outbox.next_attempt_at <= now)
        .values(status="sending", attempts=Outbox.attempts + 1, next_attempt_at=now + LEASE)
        .execution_options(synchronize_session=False)).rowcount
    session.commit()
    if claimed != 1:
        return Outcome("skipped")  # sent, failed, not due yet, or claimed by another worker
    row = session.get(Outbox, outbox_id)
    try:
        send(row.message, config)
    except (TemporaryFailure, PermanentFailure) as exc:
        reason = str(exc)
        if isinstance(exc, TemporaryFailure) and row.attempts < int(config["MAIL_MAX_ATTEMPTS"]):
            delay = min(float(config["MAIL_RETRY_SECONDS"]) * 2 ** (row.attempts - 1), RETRY_CAP_SECONDS)
            _record(session, row, status="queued", last_error=reason,
                    next_attempt_at=utcnow() + dt.timedelta(seconds=delay))
            log.warning("mail %s (outbox id %s) not sent, attempt %s: %s; trying again in %.0f s",
                        row.kind, outbox_id, row.attempts, reason, delay)
            return Outcome("retry", delay, reason)
        _record(session, row, status="failed", last_error=reason)
        log.error("mail %s (outbox id %s) not delivered after %s attempt(s): %s", row.kind, outbox_id,
                  row.attempts, reason)
        return Outcome("failed", None, reason)
    _record(session, row, status="sent", sent_at=utcnow(), last_error=None)
    return Outcome("sent")


def _record(session: Session, row: Outbox, **values) -> None:
    for name, value in values.items():
        setattr(row, name, value)
    session.commit()


# -- sending --------------------------------------------------------------------------------


def send(data: bytes, config) -> None:
    """Send one stored message through SCREENING_MAIL_URL, or write it to MAIL_DIR; raise Temporary/PermanentFailure."""
    if not config.get("MAIL_URL"):
        try:
            write_to_folder(data, Path(config["MAIL_DIR"]))
        except OSError as exc:
            raise TemporaryFailure(f"cannot write to the mail folder ({type(exc).__name__})") from None
        return
    message = email.message_from_bytes(bytes(data), policy=email.policy.SMTP)
    try:
        _send_smtp(message, config["MAIL_URL"], float(config.get("MAIL_TIMEOUT", 20)))
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        text = _short(f"{codes[0]} recipient refused") if codes else "recipient refused"
        raise (PermanentFailure if all(c >= 500 for c in codes) else TemporaryFailure)(text) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise TemporaryFailure(f"{exc.smtp_code} the mail server refused the user name or password") from None
    except smtplib.SMTPResponseException as exc:
        text = _short(f"{exc.smtp_code} {_text(exc.smtp_error)}")
        raise (PermanentFailure if exc.smtp_code >= 500 else TemporaryFailure)(text) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise TemporaryFailure(f"cannot reach the mail server ({type(exc).__name__})") from None


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _short(reason: str) -> str:
    """A reason fit for the outbox and the log: no address, one line, at most 200 characters."""
    return " ".join(ADDRESS.sub("[address]", reason).split())[:200]


def _send_smtp(message: EmailMessage, url: str, timeout: float) -> None:
    parts = urlsplit(url)
    context = ssl.create_default_context()
    host = parts.hostname or "localhost"
    if parts.scheme == "smtps":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, parts.port or 465, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, parts.port or 587, timeout=timeout)
    with smtp:
        smtp.ehlo()
        if parts.scheme == "smtp" and smtp.has_extn("starttls"):
            smtp.starttls(context=context)
            smtp.ehlo()
        if parts.username:
            if parts.scheme == "smtp" and not isinstance(smtp.sock, ssl.SSLSocket) and host not in ("localhost",
                                                                                                    "127.0.0.1"):
                raise TemporaryFailure("the mail server offers no STARTTLS: the password is not sent in clear")
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
        smtp.send_message(message)


def write_to_folder(data: bytes, folder: Path) -> Path:
    """Write one message as an .eml file readable by its owner only (development, or SCREENING_MAIL_DIR)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{utcnow():%Y%m%d-%H%M%S}-{secrets.token_hex(4)}.eml"
    fd, temp = tempfile.mkstemp(prefix=".", suffix=".partial", dir=folder)
    with os.fdopen(fd, "wb") as fh:
        fh.write(bytes(data))
    os.replace(temp, folder / name)
    return folder / name
