"""Two-factor sign-in for staff (issue 15): passkeys (WebAuthn), authenticator-app codes (TOTP) and recovery codes.

- Who must have a second factor: the roles in ``SCREENING_TWO_FACTOR_ROLES`` (admin and practitioner unless the
  clinic says otherwise). An account that has one is always asked for it, whatever its roles.
- The sign-in between a correct password and the second factor is a ``PendingSignIn`` row: the browser holds only
  its random token (in the signed session cookie, never a staff session), it lasts ``PENDING_MINUTES`` and it
  ends when the sign-in completes. A passkey's sign-in challenge is kept on that row and used once.
- TOTP secrets are encrypted at rest (crypto.EncryptedText); a code is accepted one 30-second step either side
  of now, and never for a step at or before the last one accepted (no replay).
- Recovery codes: ten, shown once, stored as SHA-256 hashes (60 random bits each); each works once.
- Passkeys: py_webauthn; the relying party is the host of ``SCREENING_BASE_URL`` (an IP address cannot be one:
  browsers refuse it). The sign count is checked and kept.

Service functions only: the pages are in twofactor_views.py; the sign-in itself in views.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from urllib.parse import urlsplit

import pyotp
import segno
from flask import current_app
from sqlalchemy import DateTime, LargeBinary, String, delete, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse, WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from .. import audit
from ..crypto import EncryptedText, bind_encrypted_columns
from ..extensions import db
from ..models import StaffUser, utcnow
from .accounts import _token_hash, end_all_sessions

PENDING_MINUTES = 10
RECOVERY_CODES = 10
# No 0/o, 1/l/i: a code copied from paper is read without doubt. 31 letters, 12 of them: about 59 random bits.
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_LENGTH = 12
MAX_PASSKEY_NAME = 60
MAX_PASSKEYS = 20
MAX_CREDENTIAL = 20_000  # the JSON of one WebAuthn answer (an attestation is a few KiB)


class TwoFactorError(ValueError):
    """A second factor cannot be added, used or removed as asked (the message says why, for the person)."""


# -- the tables --------------------------------------------------------------------------------------------------


class TotpCredential(db.Model):
    """An authenticator app's shared secret. Unconfirmed (``confirmed_at`` empty) until a first code proves it."""

    __tablename__ = "totp_credential"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(db.ForeignKey("staff_user.id"), index=True)
    secret: Mapped[str] = mapped_column(EncryptedText)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_step: Mapped[int] = mapped_column(default=0)  # the last 30-second step accepted: no step at or before it
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=lambda: secrets.token_hex(16))

    def seal_binding(self) -> str:
        """The secret is bound to this row (crypto.py): copied to another account's row, it is refused."""
        return f"{self.uid}|{self.user_id}"


class Passkey(db.Model):
    """A WebAuthn credential of one member of staff, named by them."""

    __tablename__ = "passkey"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(db.ForeignKey("staff_user.id"), index=True)
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)  # base64url; at most 1,023 bytes
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(default=0)
    name: Mapped[str] = mapped_column(String(MAX_PASSKEY_NAME))
    transports: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class RecoveryCode(db.Model):
    """One single-use recovery code, hashed."""

    __tablename__ = "recovery_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(db.ForeignKey("staff_user.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class PendingSignIn(db.Model):
    """A sign-in whose password was right, waiting for the second factor (``verify``) or its first one (``enrol``)."""

    __tablename__ = "pending_sign_in"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(db.ForeignKey("staff_user.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    challenge: Mapped[str | None] = mapped_column(String(200))  # a passkey sign-in's challenge, used once
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)


bind_encrypted_columns(TotpCredential)


# -- who needs what ----------------------------------------------------------------------------------------------


def required(user: StaffUser) -> bool:
    """Whether this account's roles require a second factor (SCREENING_TWO_FACTOR_ROLES)."""
    roles = current_app.config.get("TWO_FACTOR_ROLES", ())
    return bool(roles) and user.has_role(*roles)


def confirmed_totp(session: Session, user: StaffUser) -> TotpCredential | None:
    return session.scalar(select(TotpCredential).where(TotpCredential.user_id == user.id,
                                                       TotpCredential.confirmed_at.is_not(None)))


def passkeys(session: Session, user: StaffUser) -> list[Passkey]:
    return list(session.scalars(select(Passkey).where(Passkey.user_id == user.id).order_by(Passkey.created_at,
                                                                                             Passkey.id)))


def unused_recovery_codes(session: Session, user: StaffUser) -> int:
    return session.scalar(select(func.count(RecoveryCode.id)).where(RecoveryCode.user_id == user.id,
                                                                    RecoveryCode.used_at.is_(None))) or 0


def factor_count(session: Session, user: StaffUser) -> int:
    """How many second factors the account has (its authenticator app and each passkey)."""
    return (1 if confirmed_totp(session, user) else 0) + len(passkeys(session, user))


def next_step(session: Session, user: StaffUser) -> str | None:
    """After a correct password: ``verify`` (ask for the second factor), ``enrol`` (set one up first) or None."""
    if factor_count(session, user):
        return "verify"
    return "enrol" if required(user) else None


# -- the sign-in between password and second factor --------------------------------------------------------------


def start_pending(session: Session, user: StaffUser, purpose: str) -> str:
    """Record a sign-in waiting for its second step; return the random token for the browser's session."""
    now = utcnow()
    session.execute(delete(PendingSignIn).where(PendingSignIn.expires_at < now))
    token = secrets.token_urlsafe(32)
    session.add(PendingSignIn(token_hash=_token_hash(token), user_id=user.id, purpose=purpose, created_at=now,
                              expires_at=now + dt.timedelta(minutes=PENDING_MINUTES)))
    return token


def load_pending(session: Session, token: str | None, purpose: str) -> tuple[PendingSignIn, StaffUser] | None:
    """Return the live pending sign-in of ``token`` for ``purpose`` and its (active) account, or None."""
    if not token or not isinstance(token, str):
        return None
    row = session.scalar(select(PendingSignIn).where(PendingSignIn.token_hash == _token_hash(token)))
    if row is None or row.purpose != purpose:
        return None
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=dt.UTC)
    user = session.get(StaffUser, row.user_id)
    if expires < utcnow() or user is None or not user.is_active:
        session.delete(row)
        session.commit()
        return None
    return row, user


def end_pending(session: Session, row: PendingSignIn) -> None:
    """The sign-in is complete (or abandoned): its pending row goes."""
    session.execute(delete(PendingSignIn).where(PendingSignIn.id == row.id))


# -- authenticator apps (TOTP) -----------------------------------------------------------------------------------


def start_totp(session: Session, user: StaffUser) -> TotpCredential:
    """Return the account's unconfirmed authenticator secret, made now if there is none."""
    row = session.scalar(select(TotpCredential).where(TotpCredential.user_id == user.id,
                                                      TotpCredential.confirmed_at.is_(None)))
    if row is None:
        row = TotpCredential(user_id=user.id, secret=pyotp.random_base32(), uid=secrets.token_hex(16))
        session.add(row)
        session.commit()
    return row


def provisioning_uri(user: StaffUser, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=current_app.config["CLINIC_NAME"])


def qr_svg(user: StaffUser, secret: str, title: str) -> str:
    """The otpauth:// address as an inline SVG QR code, made here (no request to another host; no inline style)."""
    return segno.make(provisioning_uri(user, secret), error="m").svg_inline(scale=5, dark="#000", light="#fff",
                                                                            title=title, border=4)


def spaced(secret: str) -> str:
    """The secret in groups of four, to type into an app by hand."""
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def _clean_code(code: str) -> str:
    return "".join(ch for ch in (code or "") if not ch.isspace() and ch != "-").lower()


def _matching_step(secret: str, code: str) -> int | None:
    """The 30-second step (now, or one either side) whose code is ``code``, or None."""
    code = _clean_code(code)
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now = utcnow()
    step = totp.timecode(now)
    for offset in (0, -1, 1):  # valid_window=1
        if secrets.compare_digest(totp.generate_otp(step + offset), code):
            return step + offset
    return None


def confirm_totp(session: Session, user: StaffUser, code: str, *, address: str = "") -> bool:
    """Confirm the unconfirmed secret with its first code; it replaces any earlier app. False: wrong code."""
    row = session.scalar(select(TotpCredential).where(TotpCredential.user_id == user.id,
                                                      TotpCredential.confirmed_at.is_(None)))
    step = _matching_step(row.secret, code) if row else None
    if step is None:
        return False
    session.execute(delete(TotpCredential).where(TotpCredential.user_id == user.id, TotpCredential.id != row.id))
    row.confirmed_at = utcnow()
    row.last_step = step
    audit.record(session, "totp_added", actor_id=user.id, address=address, commit=False)
    session.commit()
    return True


def check_totp(session: Session, user: StaffUser, code: str) -> bool:
    """Whether ``code`` is the account's app's code now, for a step not used before (one update: no race)."""
    row = confirmed_totp(session, user)
    step = _matching_step(row.secret, code) if row else None
    if step is None:
        return False
    done = session.execute(update(TotpCredential).where(TotpCredential.id == row.id, TotpCredential.last_step < step)
                           .values(last_step=step))
    return done.rowcount == 1


def remove_totp(session: Session, user: StaffUser, *, address: str = "") -> None:
    """Remove the account's authenticator app (not its last second factor if one is required)."""
    if confirmed_totp(session, user) is None:
        raise TwoFactorError("There is no authenticator app to remove.")
    _keep_one(session, user)
    session.execute(delete(TotpCredential).where(TotpCredential.user_id == user.id))
    audit.record(session, "totp_removed", actor_id=user.id, address=address, commit=False)
    session.commit()


def _keep_one(session: Session, user: StaffUser) -> None:
    if required(user) and factor_count(session, user) <= 1:
        raise TwoFactorError("This is your only second factor, and your role needs one: add a passkey or an "
                             "authenticator app first, then remove this one.")


# -- recovery codes ----------------------------------------------------------------------------------------------


def _code_hash(user_id: int, code: str) -> str:
    return hashlib.sha256(f"recovery:{user_id}:{_clean_code(code)}".encode()).hexdigest()


def new_recovery_codes(session: Session, user: StaffUser, *, address: str = "") -> list[str]:
    """Make ten new recovery codes (the old ones stop working); return them, to be shown once."""
    codes = ["".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
             for _ in range(RECOVERY_CODES)]
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    session.add_all(RecoveryCode(user_id=user.id, code_hash=_code_hash(user.id, c)) for c in codes)
    audit.record(session, "recovery_codes_created", actor_id=user.id, address=address, commit=False)
    session.commit()
    return ["-".join(c[i:i + 4] for i in range(0, RECOVERY_LENGTH, 4)) for c in codes]


def use_recovery_code(session: Session, user: StaffUser, code: str) -> bool:
    """Spend one recovery code (one update: a code used twice at once works once). False: no such unused code."""
    cleaned = _clean_code(code)
    if len(cleaned) != RECOVERY_LENGTH or any(ch not in RECOVERY_ALPHABET for ch in cleaned):
        return False
    done = session.execute(update(RecoveryCode).where(
        RecoveryCode.user_id == user.id, RecoveryCode.code_hash == _code_hash(user.id, cleaned),
        RecoveryCode.used_at.is_(None)).values(used_at=utcnow()))
    return done.rowcount == 1


# -- passkeys (WebAuthn) -----------------------------------------------------------------------------------------


def relying_party() -> tuple[str, str]:
    """(RP id, origin): the host of SCREENING_BASE_URL, and its scheme, host and port."""
    parts = urlsplit(current_app.config["BASE_URL"])
    return parts.hostname or "", f"{parts.scheme}://{parts.netloc}"


def _webauthn_user_id(user: StaffUser) -> bytes:
    return user.id.to_bytes(8, "big")


def registration_options(session: Session, user: StaffUser) -> tuple[str, str]:
    """Return (the options' JSON for navigator.credentials.create, the challenge as base64url)."""
    if len(passkeys(session, user)) >= MAX_PASSKEYS:
        raise TwoFactorError(f"You have {MAX_PASSKEYS} passkeys: remove one before adding another.")
    rp_id, _origin = relying_party()
    options = generate_registration_options(
        rp_id=rp_id, rp_name=current_app.config["CLINIC_NAME"], user_name=user.email, user_id=_webauthn_user_id(user),
        user_display_name=user.name,
        exclude_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id))
                             for p in passkeys(session, user)],
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED, user_verification=UserVerificationRequirement.PREFERRED))
    return options_to_json(options), bytes_to_base64url(options.challenge)


def clean_name(name: str | None) -> str:
    """A passkey's name as typed, cleaned like every name shown to staff; raise TwoFactorError when unusable."""
    from ..questionnaire.forms import clean_text

    name = clean_text(name or "").strip()
    if not name:
        raise TwoFactorError("Give the passkey a name, like “Work laptop” or “Pat’s phone”.")
    if len(name) > MAX_PASSKEY_NAME:
        raise TwoFactorError(f"The name must have at most {MAX_PASSKEY_NAME} characters.")
    return name


def _credential(text: str | None) -> dict:
    if not text or len(text) > MAX_CREDENTIAL:
        raise TwoFactorError("The browser's answer was missing or too long. Try again.")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise TwoFactorError("The browser's answer could not be read. Try again.") from None
    if not isinstance(value, dict):
        raise TwoFactorError("The browser's answer could not be read. Try again.")
    return value


def add_passkey(session: Session, user: StaffUser, credential: str | None, challenge: str | None, name: str,
                *, address: str = "") -> Passkey:
    """Verify a new passkey's registration against ``challenge`` and keep it."""
    name = clean_name(name)
    if not challenge:
        raise TwoFactorError("That passkey request has expired. Try again.")
    rp_id, origin = relying_party()
    try:
        verified = verify_registration_response(credential=_credential(credential),
                                                expected_challenge=base64url_to_bytes(challenge),
                                                expected_rp_id=rp_id, expected_origin=origin)
    except (InvalidRegistrationResponse, WebAuthnException, ValueError, KeyError, TypeError):
        raise TwoFactorError("The passkey could not be checked. Try again.") from None
    credential_id = bytes_to_base64url(verified.credential_id)
    if session.scalar(select(Passkey.id).where(Passkey.credential_id == credential_id)):
        raise TwoFactorError("This passkey is registered already.")
    transports = _credential(credential).get("response", {}).get("transports") or []
    key = Passkey(user_id=user.id, credential_id=credential_id, public_key=verified.credential_public_key,
                  sign_count=verified.sign_count, name=name,
                  transports=",".join(t for t in transports if isinstance(t, str) and t.isalpha())[:200])
    session.add(key)
    session.flush()
    audit.record(session, "passkey_added", actor_id=user.id, detail=f"passkey={key.id}", address=address,
                 commit=False)
    session.commit()
    return key


def authentication_options(session: Session, user: StaffUser) -> tuple[str, str]:
    """Return (the options' JSON for navigator.credentials.get, the challenge as base64url)."""
    rp_id, _origin = relying_party()
    options = generate_authentication_options(
        rp_id=rp_id, user_verification=UserVerificationRequirement.PREFERRED,
        allow_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id))
                           for p in passkeys(session, user)])
    return options_to_json(options), bytes_to_base64url(options.challenge)


def check_passkey(session: Session, user: StaffUser, credential: str | None, challenge: str | None) -> Passkey | None:
    """The account's passkey that signed ``challenge`` (its sign count checked and kept), or None."""
    try:
        answer = _credential(credential)
    except TwoFactorError:
        return None
    raw_id = answer.get("rawId") or answer.get("id")
    if not challenge or not isinstance(raw_id, str) or len(raw_id) > 1400:
        return None
    key = session.scalar(select(Passkey).where(Passkey.user_id == user.id, Passkey.credential_id == raw_id))
    if key is None:
        return None
    rp_id, origin = relying_party()
    try:
        verified = verify_authentication_response(credential=answer, expected_challenge=base64url_to_bytes(challenge),
                                                  expected_rp_id=rp_id, expected_origin=origin,
                                                  credential_public_key=key.public_key,
                                                  credential_current_sign_count=key.sign_count)
    except (InvalidAuthenticationResponse, WebAuthnException, ValueError, KeyError, TypeError):
        return None
    key.sign_count = verified.new_sign_count
    key.last_used_at = utcnow()
    return key


def find_passkey(session: Session, user: StaffUser, passkey_id: str | None) -> Passkey:
    """The account's own passkey named by a form's id; raise TwoFactorError."""
    if not passkey_id or not passkey_id.isascii() or not passkey_id.isdigit() or len(passkey_id) > 9:
        raise TwoFactorError("Choose a passkey from the list.")
    key = session.scalar(select(Passkey).where(Passkey.id == int(passkey_id), Passkey.user_id == user.id))
    if key is None:
        raise TwoFactorError("Choose a passkey from the list.")
    return key


def rename_passkey(session: Session, user: StaffUser, key: Passkey, name: str, *, address: str = "") -> None:
    key.name = clean_name(name)
    audit.record(session, "passkey_renamed", actor_id=user.id, detail=f"passkey={key.id}", address=address,
                 commit=False)
    session.commit()


def remove_passkey(session: Session, user: StaffUser, key: Passkey, *, address: str = "") -> None:
    _keep_one(session, user)
    audit.record(session, "passkey_removed", actor_id=user.id, detail=f"passkey={key.id}", address=address,
                 commit=False)
    session.delete(key)
    session.commit()


# -- a lost second factor ----------------------------------------------------------------------------------------


def reset(session: Session, user: StaffUser, *, by: StaffUser | None = None, address: str = "") -> None:
    """Remove every second factor and recovery code of ``user``, sign them out everywhere and tell them by email.

    Their next sign-in takes them through setting up a second factor again (if their role needs one).
    """
    from .. import mail

    if by is not None and by.id == user.id:
        raise TwoFactorError("You cannot reset your own second factors here: use your Security page, or ask "
                             "another admin.")
    for model in (TotpCredential, Passkey, RecoveryCode, PendingSignIn):
        session.execute(delete(model).where(model.user_id == user.id))
    end_all_sessions(session, user)
    audit.record(session, "two_factor_reset", actor_id=by.id if by else None, detail=f"user={user.id}",
                 address=address, commit=False)
    message = mail.compose("two_factor_reset", user.email, staff_name=user.name, link=mail.link("staff.login"),
                           admin_name=by.name if by else None)
    mail.queue(session, message, kind="two_factor_reset")
    session.commit()
