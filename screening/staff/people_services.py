"""Staff accounts' use cases, one each for the admin pages (staff/people.py) and the command line (cli.py).

Invite, resend an invitation, change roles, deactivate, reactivate, ask for a password reset, and set a password
through an emailed link. The rules are here once: an admin never removes their own admin role nor deactivates
themselves, the last active admin stays an admin, a password meets staff/passwords.py, and every change is in the
audit trail (ids and role codes only).

Links (``AccountLink``): a random 256-bit token mailed to the person, of which only the SHA-256 is stored; it works
once, until it expires (``SCREENING_STAFF_INVITE_HOURS``, ``SCREENING_PASSWORD_RESET_MINUTES``); a newer link for
the same account, a password set, or the account deactivated makes every other outstanding link expire at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from .. import audit, mail
from ..models import AccountLink, StaffUser, utcnow
from .accounts import (
    MAX_EMAIL,
    ROLES,
    AccountError,
    check_password,
    deactivate_account,
    end_all_sessions,
    hash_password,
    normalise_email,
)

INVITE, RESET = "invite", "reset"
MAX_NAME = 120
RESETS_PER_HOUR = 3  # reset emails to one account in an hour, however many networks ask: no mail bombing


class LinkGone(Exception):
    """The link is unknown, used, expired or superseded, or its account cannot use it (all look the same)."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def is_set_up(user: StaffUser) -> bool:
    """Whether the person has chosen a password (an invited account has none until then)."""
    return bool(user.password_hash)


def list_users(session: Session) -> list[StaffUser]:
    """Return every staff account, active ones first."""
    return list(session.scalars(select(StaffUser).order_by(StaffUser.is_active.desc(), StaffUser.name,
                                                           StaffUser.email)))


# -- what an account may be ----------------------------------------------------------------------------------


def check_email(email: str) -> str:
    """Return ``email`` as accounts store it; raise AccountError saying what is wrong with it."""
    from ..questionnaire.forms import _EMAIL  # the questionnaire's own check of an address

    email = normalise_email(email)
    if not email:
        raise AccountError("Enter the person's email address")
    if len(email) > MAX_EMAIL:
        raise AccountError(f"The email address must have at most {MAX_EMAIL} characters (the sign-in form's limit)")
    if "\x00" in email or not _EMAIL.match(email):
        raise AccountError("Enter an email address in the correct format, like name@example.com")
    return email


def check_name(name: str) -> str:
    """Return the person's name as shown to staff; raise AccountError."""
    from ..questionnaire.forms import clean_text  # no control or bidirectional override in a name shown to staff

    name = clean_text(name)
    if not name:
        raise AccountError("Enter the person's full name")
    if len(name) > MAX_NAME:
        raise AccountError(f"The name must have at most {MAX_NAME} characters")
    return name


def check_roles(roles) -> list[str]:
    """Return the roles in a stable order; raise AccountError unless there is at least one and each is known."""
    chosen = sorted(set(roles))
    if not chosen:
        raise AccountError("Choose at least one role")
    if any(r not in ROLES for r in chosen):
        raise AccountError(f"Roles must be among {', '.join(ROLES)}")
    return chosen


def _other_active_admins(session: Session, user: StaffUser) -> int:
    return session.scalar(select(func.count(StaffUser.id)).where(
        StaffUser.id != user.id, StaffUser.is_active.is_(True), StaffUser.password_hash != "",
        StaffUser.roles.like("%admin%"))) or 0


def _keeps_an_admin(session: Session, user: StaffUser) -> None:
    """Refuse to take the last active admin away (there would be no one left to manage accounts)."""
    if user.is_active and is_set_up(user) and user.has_role("admin") and _other_active_admins(session, user) == 0:
        raise AccountError(f"{user.name} is the last active admin: make someone else an admin first")


# -- links ---------------------------------------------------------------------------------------------------


def _expire_links(session: Session, user: StaffUser, now: dt.datetime, purpose: str | None = None) -> None:
    where = [AccountLink.user_id == user.id, AccountLink.used_at.is_(None), AccountLink.expires_at > now]
    if purpose:
        where.append(AccountLink.purpose == purpose)
    session.execute(update(AccountLink).where(*where).values(expires_at=now).execution_options(
        synchronize_session=False))


def _lifetime(purpose: str) -> dt.timedelta:
    config = current_app.config
    if purpose == INVITE:
        return dt.timedelta(hours=float(config["STAFF_INVITE_HOURS"]))
    return dt.timedelta(minutes=float(config["PASSWORD_RESET_MINUTES"]))


def _new_link(session: Session, user: StaffUser, purpose: str) -> tuple[str, AccountLink]:
    """Make a link for ``user`` (every older one of the same purpose stops working); return its token and row."""
    now = utcnow()
    _expire_links(session, user, now, purpose)
    token = secrets.token_urlsafe(32)
    row = AccountLink(user_id=user.id, token_hash=_hash(token), purpose=purpose, created_at=now,
                      expires_at=now + _lifetime(purpose))
    session.add(row)
    return token, row


def _until_text(moment: dt.datetime) -> str:
    from ..display import format_moment  # the clinic's own time, with its zone: 2 December 2026, 14:05 GMT

    return format_moment(moment)


def _mail_link(session: Session, user: StaffUser, purpose: str) -> None:
    token, row = _new_link(session, user, purpose)
    template = "staff_invite" if purpose == INVITE else "password_reset"
    message = mail.compose(template, user.email, link=mail.link("staff.follow_account_link", token=token),
                           valid_until=_until_text(row.expires_at))
    mail.queue(session, message, kind=template)


@dataclass(frozen=True)
class Invitation:
    """The latest invitation of an account not set up yet."""

    sent_at: dt.datetime
    expires_at: dt.datetime
    is_expired: bool


def invitation_state(session: Session, user: StaffUser) -> Invitation | None:
    """Return the account's latest invitation while it is not set up (None once it is, or if none was sent)."""
    if is_set_up(user):
        return None
    row = session.scalar(select(AccountLink).where(AccountLink.user_id == user.id, AccountLink.purpose == INVITE)
                         .order_by(AccountLink.id.desc()).limit(1))
    if row is None:
        return None
    return Invitation(_aware(row.created_at), _aware(row.expires_at), _aware(row.expires_at) <= utcnow())


# -- the use cases -------------------------------------------------------------------------------------------


def invite(session: Session, *, email: str, name: str, roles, actor_id: int | None = None,
           address: str = "") -> StaffUser:
    """Make an account without a password and email the person a link to choose one; raise AccountError."""
    email, name, chosen = check_email(email), check_name(name), check_roles(roles)
    if session.scalar(select(StaffUser.id).where(StaffUser.email == email)) is not None:
        raise AccountError(f"An account for {email} exists already")
    user = StaffUser(email=email, name=name, roles=",".join(chosen), password_hash="")
    session.add(user)
    session.flush()
    _mail_link(session, user, INVITE)
    audit.record(session, "account_invited", actor_id=actor_id, detail=f"user={user.id} roles={user.roles}",
                 address=address, commit=False)
    session.commit()
    return user


def resend_invitation(session: Session, user: StaffUser, *, actor_id: int | None = None,
                      address: str = "") -> None:
    """Email a new invitation link (the old one stops working); raise AccountError once the account is set up."""
    if is_set_up(user):
        raise AccountError(f"{user.name} has set up their account already: there is no invitation to send")
    if not user.is_active:
        raise AccountError(f"{user.name}'s account is deactivated: reactivate it first")
    _mail_link(session, user, INVITE)
    audit.record(session, "account_invite_resent", actor_id=actor_id, detail=f"user={user.id}", address=address,
                 commit=False)
    session.commit()


def change_roles(session: Session, user: StaffUser, roles, *, by: StaffUser | None = None,
                 address: str = "") -> bool:
    """Give ``user`` exactly ``roles``; return whether anything changed; raise AccountError when not allowed."""
    chosen = check_roles(roles)
    new = ",".join(chosen)
    if new == user.roles:
        return False
    if "admin" not in chosen and user.has_role("admin"):
        if by is not None and by.id == user.id:
            raise AccountError("You cannot remove your own admin role. Ask another admin.")
        _keeps_an_admin(session, user)
    before, user.roles = user.roles, new
    audit.record(session, "account_roles_changed", actor_id=by.id if by else None,
                 detail=f"user={user.id} roles={new} was={before}", address=address, commit=False)
    session.commit()
    return True


def deactivate(session: Session, user: StaffUser, *, by: StaffUser | None = None, address: str = "") -> None:
    """Deactivate ``user``, end their sessions and links; raise AccountError when not allowed."""
    if by is not None and user.id == by.id:
        raise AccountError("You cannot deactivate your own account. Ask another admin.")
    if not user.is_active:
        raise AccountError(f"The account {user.email} is already deactivated.")
    _keeps_an_admin(session, user)
    _expire_links(session, user, utcnow())
    deactivate_account(session, user, actor_id=by.id if by else None, address=address)


def reactivate(session: Session, user: StaffUser, *, by: StaffUser | None = None, address: str = "") -> None:
    """Let a deactivated account sign in again (with the password it had); raise AccountError if it is active."""
    if user.is_active:
        raise AccountError(f"The account {user.email} is active already.")
    user.is_active = True
    audit.record(session, "account_reactivated", actor_id=by.id if by else None, detail=f"user={user.id}",
                 address=address, commit=False)
    session.commit()


def set_password_by_command(session: Session, user: StaffUser, password: str) -> None:
    """Set a new password from the command line: the same rules, sessions and links end, the person is told."""
    check_password(password, user.email)
    _set_password(session, user, password, "password_reset", actor_id=None, address="")
    session.commit()


def _set_password(session: Session, user: StaffUser, password: str, action: str, *, actor_id: int | None,
                  address: str) -> None:
    now = utcnow()
    had_one = is_set_up(user)
    user.password_hash = hash_password(password)
    end_all_sessions(session, user)
    _expire_links(session, user, now)
    audit.record(session, action, actor_id=actor_id, detail=f"user={user.id}", address=address, commit=False)
    if had_one:
        # Whoever did not ask for it learns at once that their password changed (and whom to tell).
        mail.queue(session, mail.compose("password_changed", user.email), kind="password_changed")


# -- a forgotten password ------------------------------------------------------------------------------------


def request_reset(session: Session, email: str, *, address: str = "") -> None:
    """Email a reset link if ``email`` is an active account's (at most RESETS_PER_HOUR an hour); say nothing either way.

    The same work is done whether or not the address has an account (a lookup, a token, the message composed);
    only the queueing differs. The caller answers in the same words and (staff/people.py) the same time.
    """
    email = normalise_email(email)
    user = None if "\x00" in email else session.scalar(select(StaffUser).where(StaffUser.email == email))
    now = utcnow()
    token = secrets.token_urlsafe(32)
    expires_at = now + _lifetime(RESET)
    message = mail.compose("password_reset", email, link=mail.link("staff.follow_account_link", token=token),
                           valid_until=_until_text(expires_at))
    if user is not None and user.is_active:
        recent = session.scalar(select(func.count(AccountLink.id)).where(
            AccountLink.user_id == user.id, AccountLink.purpose == RESET,
            AccountLink.created_at >= now - dt.timedelta(hours=1))) or 0
        if recent < RESETS_PER_HOUR:
            _expire_links(session, user, now, RESET)
            session.add(AccountLink(user_id=user.id, token_hash=_hash(token), purpose=RESET, created_at=now,
                                    expires_at=expires_at))
            mail.queue(session, message, kind="password_reset")
            audit.record(session, "password_reset_requested", actor_id=user.id, detail=f"user={user.id}",
                         address=address, commit=False)
    session.commit()


# -- following a link ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Opened:
    """A link that works: its id, what it is for, and whose it is."""

    link_id: int
    purpose: str
    user: StaffUser


def _usable(session: Session, link: AccountLink | None) -> Opened:
    if link is None or link.used_at is not None or _aware(link.expires_at) <= utcnow():
        raise LinkGone()
    user = session.get(StaffUser, link.user_id)
    if user is None or not user.is_active or (link.purpose == INVITE and is_set_up(user)):
        raise LinkGone()
    return Opened(link.id, link.purpose, user)


def open_link(session: Session, token: str) -> Opened:
    """Return the link whose token this is, if it still works; raise LinkGone."""
    if not token or len(token) > 100 or "\x00" in token:
        raise LinkGone()
    return _usable(session, session.scalar(select(AccountLink).where(AccountLink.token_hash == _hash(token))))


def open_link_id(session: Session, link_id) -> Opened:
    """As ``open_link``, for the link id the browser's session holds after the first visit; raise LinkGone."""
    return _usable(session, session.get(AccountLink, link_id) if isinstance(link_id, int) else None)


def set_password_by_link(session: Session, link_id, password: str, *, address: str = "") -> StaffUser:
    """Set the password through a link (once): every session and other link of the account ends; raise LinkGone or
    AccountError (the password breaks a rule: the link still works)."""
    opened = open_link_id(session, link_id)
    user = opened.user
    check_password(password, user.email)
    link = session.get(AccountLink, opened.link_id)
    # Claimed by one UPDATE: two posts of the same link (a double click, two tabs) set the password once.
    claimed = session.execute(update(AccountLink).where(AccountLink.id == link.id, AccountLink.used_at.is_(None))
                              .values(used_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        session.rollback()
        raise LinkGone()
    action = "account_set_up" if opened.purpose == INVITE else "password_reset"
    _set_password(session, user, password, action, actor_id=user.id, address=address)
    session.commit()
    return user
