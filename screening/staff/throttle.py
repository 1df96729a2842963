"""Failed staff sign-ins, counted in the database so that every worker and every restart sees them.

Each failed sign-in (the staff sign-in page or a kiosk's exit) is a ``sign_in_failed`` audit event whose detail
names the account tried, as a keyed hash (``account=<16 hex>``: no email address in the audit trail), and the
client's network (``net=``: the IPv4 address, or an IPv6 address's /64). The audit trail is the counter: what
the admin reads there is exactly what the limits count. Three sliding windows, checked before the password is:

- **one account from one network** (``SCREENING_LOGIN_LIMIT_ACCOUNT``, 5 per 15 minutes): whoever guesses is
  stopped, and nobody else is: a known staff email cannot be locked out from somewhere else by one person;
- **one account from every network together** (``SCREENING_LOGIN_LIMIT_ACCOUNT_ALL``, 50 per 15 minutes): a
  guessing attack spread over many addresses is bounded too (at most 4,800 guesses a day on an account); pausing
  an account this way takes 50 failures from at least 10 networks, and it lasts 15 minutes, never longer;
- **one network, every account** (``SCREENING_LOGIN_LIMIT_ADDRESS``, 20 per 15 minutes): one address trying many
  accounts (password spraying). An account that has signed in successfully from the same address in the last
  30 days is not held by this one, so 20 failures on a clinic's shared connection do not lock out its staff.

A paused sign-in answers 429 with ``Retry-After`` and checks no password (so it cannot confirm one).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote

from flask import current_app, request
from limits import parse
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from ..audit import SIGN_IN_EMAIL_MAX
from ..models import AuditEvent, StaffUser, utcnow
from .accounts import normalise_email

KNOWN_ADDRESS_DAYS = 30
# A wrong second factor (two-factor sign-in) counts like a wrong password, in the same windows.
FAILURES = ("sign_in_failed", "two_factor_failed")


@dataclass(frozen=True)
class Attempt:
    """Who is being tried, and from where, as the audit trail records it."""

    account: str  # keyed hash of the normalised email
    net: str  # IPv4 address or IPv6 /64
    address: str  # the exact address (the audit event's address column)
    email: str

    def detail(self, extra: str = "") -> str:
        # "net=...;" ends with ";" so that 10.0.0.1 never matches 10.0.0.12 in a LIKE prefix. The email tried is
        # kept for the audit trail (never the password), percent-encoded so that it holds no space, ";" or "=",
        # and so can never read as another account's or network's count; bounded so the detail fits.
        return f"account={self.account} net={self.net};email={_quoted_email(self.email)};{extra}"


def _quoted_email(email: str) -> str:
    email = email[:SIGN_IN_EMAIL_MAX]
    while len(text := quote(email, safe="@.+-_")) > SIGN_IN_EMAIL_MAX:
        email = email[:-1]
    return text


def attempt(email: str) -> Attempt:
    """Return the attempt of this request for ``email`` (the validated form value)."""
    from ..security import client_key  # (security imports the kiosk, which imports this module)

    email = normalise_email(email)
    key = str(current_app.config["SECRET_KEY"]).encode()
    account = hmac.new(key, b"sign-in:" + email.encode(), hashlib.sha256).hexdigest()[:16]
    return Attempt(account=account, net=client_key(), address=request.remote_addr or "", email=email)


def _window(setting: str) -> tuple[int, dt.timedelta]:
    item = parse(str(current_app.config[setting]))
    return item.amount, dt.timedelta(seconds=item.get_expiry())


def _wait(session: Session, where, setting: str, now: dt.datetime) -> float:
    """Seconds until fewer failures than the limit lie in the window (0: not held)."""
    amount, window = _window(setting)
    recent = list(session.scalars(
        select(AuditEvent.at).where(AuditEvent.action.in_(FAILURES), AuditEvent.at >= now - window, where)
        .order_by(AuditEvent.at.desc()).limit(amount)))
    if len(recent) < amount:
        return 0.0
    oldest = recent[-1] if recent[-1].tzinfo else recent[-1].replace(tzinfo=dt.timezone.utc)
    return max(1.0, (oldest + window - now).total_seconds())


def _known_here(session: Session, who: Attempt, now: dt.datetime) -> bool:
    """Whether the account tried has signed in successfully from this exact address lately."""
    if not who.address or "\x00" in who.email:
        return False
    user_id = session.scalar(select(StaffUser.id).where(StaffUser.email == who.email))
    if user_id is None:
        return False
    return bool(session.scalar(select(exists().where(
        AuditEvent.action == "sign_in", AuditEvent.actor_id == user_id, AuditEvent.address == who.address,
        AuditEvent.at >= now - dt.timedelta(days=KNOWN_ADDRESS_DAYS)))))


def seconds_held(session: Session, who: Attempt) -> int:
    """Return how many seconds this sign-in must wait (0: it may go ahead)."""
    now = utcnow()
    waits = [
        _wait(session, AuditEvent.detail.like(f"account={who.account} net={who.net};%"),
              "STAFF_LOGIN_LIMIT_ACCOUNT", now),
        _wait(session, AuditEvent.detail.like(f"account={who.account} %"), "STAFF_LOGIN_LIMIT_ACCOUNT_ALL", now),
    ]
    address_wait = _wait(session, AuditEvent.detail.like(f"% net={who.net};%"), "STAFF_LOGIN_LIMIT_ADDRESS", now)
    if address_wait and not _known_here(session, who, now):
        waits.append(address_wait)
    return int(-(-max(waits) // 1))
