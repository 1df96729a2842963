"""Staff accounts and server-side staff sessions."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .. import audit
from ..models import StaffSession, StaffUser, utcnow
from . import passwords

ROLES = ("admin", "practitioner", "desk")
MIN_PASSWORD = passwords.MIN_LENGTH
MAX_PASSWORD = passwords.MAX_LENGTH  # the sign-in form's limit too: a longer password could never be typed in
MAX_EMAIL = 254  # likewise for the email address (and RFC 5321's limit)
_hasher = PasswordHasher()  # argon2id with the library's current parameters
_DUMMY = _hasher.hash("not a real password, used to spend the same time")


class AccountError(ValueError):
    """An account cannot be created or changed as asked."""


class SessionEnded(Exception):
    """The staff session is missing, signed out, idle too long or past its lifetime."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalise_email(email: str) -> str:
    """Return an email address as accounts store it."""
    return email.strip().lower()


def check_password(password: str, email: str = "") -> None:
    """Refuse a password that breaks the rules of staff/passwords.py (the same everywhere: web and command line)."""
    problem = passwords.problem(password, email)
    if problem:
        raise AccountError(problem)


def hash_password(password: str) -> str:
    """Return the argon2id hash of ``password`` (checked by the caller)."""
    return _hasher.hash(password)


def create_user(session: Session, email: str, name: str, roles: list[str], password: str) -> StaffUser:
    """Create a staff account (password hashed with argon2id)."""
    email = normalise_email(email)
    if "@" not in email:
        raise AccountError("give an email address")
    if len(email) > MAX_EMAIL:
        raise AccountError(f"the email address must have at most {MAX_EMAIL} characters (the sign-in form's limit)")
    bad = [r for r in roles if r not in ROLES]
    if bad or not roles:
        raise AccountError(f"roles must be among {', '.join(ROLES)}")
    check_password(password, email)
    if session.scalar(select(StaffUser).where(StaffUser.email == email)):
        raise AccountError(f"an account for {email} exists already")
    from ..questionnaire.forms import clean_text  # no control or bidirectional override in a name shown to staff

    user = StaffUser(email=email, name=clean_text(name) or email, roles=",".join(sorted(set(roles))),
                     password_hash=_hasher.hash(password))
    session.add(user)
    session.flush()
    audit.record(session, "account_created", detail=f"user={user.id} roles={user.roles}", commit=False)
    session.commit()
    return user


def find_user(session: Session, email: str) -> StaffUser:
    """Return the account for ``email``; raise AccountError."""
    user = session.scalar(select(StaffUser).where(StaffUser.email == normalise_email(email)))
    if user is None:
        raise AccountError(f"no account for {normalise_email(email)}")
    return user


def end_all_sessions(session: Session, user: StaffUser) -> None:
    """Sign a user out everywhere."""
    session.execute(update(StaffSession).where(StaffSession.user_id == user.id, StaffSession.ended_at.is_(None))
                    .values(ended_at=utcnow()))


def deactivate_account(session: Session, user: StaffUser, *, actor_id: int | None = None,
                       address: str = "") -> None:
    """Deactivate an account, end its sessions and audit who did it."""
    user.is_active = False
    end_all_sessions(session, user)
    audit.record(session, "account_deactivated", actor_id=actor_id, detail=f"user={user.id}", address=address,
                 commit=False)
    session.commit()


def deactivate(session: Session, email: str) -> StaffUser:
    """Deactivate the account for ``email`` (from the command line) and end its sessions."""
    user = find_user(session, email)
    deactivate_account(session, user)
    return user


def reset_password(session: Session, email: str, password: str) -> StaffUser:
    """Set a new password and end the user's sessions."""
    user = find_user(session, email)
    check_password(password, user.email)
    user.password_hash = _hasher.hash(password)
    end_all_sessions(session, user)
    audit.record(session, "password_reset", detail=f"user={user.id}", commit=False)
    session.commit()
    return user


def authenticate(session: Session, email: str, password: str) -> StaffUser | None:
    """Return the active account whose password matches, or None (in about the same time either way)."""
    email = normalise_email(email)
    # No account's address holds a NUL, and PostgreSQL refuses one in a query: no lookup (the hash check still runs).
    user = None if "\x00" in email else session.scalar(select(StaffUser).where(StaffUser.email == email))
    # An invited account has no password yet (an empty hash): checked against the dummy, to spend the same time.
    try:
        _hasher.verify(user.password_hash if user and user.password_hash else _DUMMY, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or not user.is_active or not user.password_hash:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return user


def open_session(session: Session, user: StaffUser) -> str:
    """Start a server-side session for ``user``; return the random token for the cookie."""
    token = secrets.token_urlsafe(32)
    session.add(StaffSession(token_hash=_token_hash(token), user_id=user.id))
    session.commit()
    return token


def resume(session: Session, token: str | None, idle: dt.timedelta, lifetime: dt.timedelta,
           touch: bool = True) -> tuple[StaffSession, StaffUser]:
    """Return the live session and user for ``token``; raise SessionEnded saying why not."""
    if not token:
        raise SessionEnded("none")
    row = session.scalar(select(StaffSession).where(StaffSession.token_hash == _token_hash(token)))
    if row is None or row.ended_at is not None:
        raise SessionEnded("ended")
    now = utcnow()
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=dt.timezone.utc)
    seen = row.last_seen_at if row.last_seen_at.tzinfo else row.last_seen_at.replace(tzinfo=dt.timezone.utc)
    user = session.get(StaffUser, row.user_id)
    reason = None
    if now - seen > idle:
        reason = "idle"
    elif now - created > lifetime:
        reason = "lifetime"
    elif user is None or not user.is_active:
        reason = "inactive"
    if reason:
        row.ended_at = now
        session.commit()
        raise SessionEnded(reason)
    # Write "last seen" at most every 30 seconds: a write on every request costs ~10 ms on SQLite,
    # and the idle timeout (minutes) does not need finer resolution.
    if touch and now - seen > dt.timedelta(seconds=30):
        row.last_seen_at = now
        session.commit()
    return row, user


def end_session(session: Session, row: StaffSession) -> None:
    """Sign out: end the session on the server."""
    row.ended_at = utcnow()
    session.commit()
