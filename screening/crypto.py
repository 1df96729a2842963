"""Encryption at rest: health data is stored only as authenticated ciphertext (Fernet, AES-128-CBC + HMAC).

Keys come from the environment (``SCREENING_ENCRYPTION_KEYS``, newest first; older keys only decrypt),
never from the repository; ``flask screening rotate-keys`` re-encrypts everything under the newest.
Staff search by name and date of birth through keyed blind indexes (HMAC-SHA256 under a separate
``SCREENING_INDEX_KEY``): the database holds neither in clear. docs/security.md explains the choice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import unicodedata
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app
from sqlalchemy import LargeBinary
from sqlalchemy.types import TypeDecorator


class VaultError(RuntimeError):
    """A key is unusable, or stored data cannot be decrypted with any configured key."""


class Vault:
    """The app's keys: encrypts with the newest, decrypts with any; computes blind indexes."""

    def __init__(self, keys: list[str], index_key: str):
        if not keys:
            raise VaultError("SCREENING_ENCRYPTION_KEYS holds no key")
        try:
            self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys])
        except (ValueError, TypeError):
            raise VaultError("SCREENING_ENCRYPTION_KEYS must be Fernet keys (32 url-safe base64-encoded bytes), "
                             "comma-separated, newest first; make one with `flask --app wsgi screening new-key`") \
                from None
        if len(index_key) < 32:
            raise VaultError("SCREENING_INDEX_KEY must be at least 32 characters; "
                             "make one with `flask --app wsgi screening new-key`")
        self._index_key = index_key.encode()
        self._pdf_key = hmac.new(self._index_key, b"screening pdf digest key", hashlib.sha256).digest()

    def encrypt(self, data: bytes) -> bytes:
        """Return ``data`` encrypted and authenticated under the newest key."""
        return self._fernet.encrypt(data)

    def decrypt(self, token: bytes) -> bytes:
        """Return the plaintext of ``token``; raise VaultError when no key opens it (or it was altered)."""
        try:
            return self._fernet.decrypt(bytes(token))
        except InvalidToken:
            raise VaultError("stored data cannot be decrypted with any key in SCREENING_ENCRYPTION_KEYS "
                             "(a key is missing, or the data was altered)") from None

    def index(self, purpose: str, value: str, length: int = 32) -> str:
        """Return the keyed blind index of ``value`` (hex): equal values match, nothing else is revealed."""
        digest = hmac.new(self._index_key, f"{purpose}\0{value}".encode(), hashlib.sha256).hexdigest()
        return digest[:length]

    def pdf_digest(self, data: bytes) -> str:
        """Return the keyed digest (HMAC-SHA256, hex) stored beside a PDF to check it was not altered.

        Keyed, not a plain SHA-256: the PDF is reproducible from a name, a date of birth and answers, so a plain
        hash in a copy of the database would let anyone confirm a guess about who a submission belongs to. The
        key is derived from SCREENING_INDEX_KEY (a key of its own for this purpose), which is never in the database.
        """
        return hmac.new(self._pdf_key, bytes(data), hashlib.sha256).hexdigest()

    def pdf_intact(self, data: bytes | None, digest: str | None) -> bool:
        """Whether ``data`` matches its stored keyed digest."""
        return data is not None and digest is not None and hmac.compare_digest(self.pdf_digest(data), digest)

    def name_index(self, name: str) -> str:
        """Return the blind index of a name: one entry per word and per word-start of 3 letters or more.

        Searching "smi" or "smith" then finds "Jane Smith" without the name being stored in clear.
        """
        entries: list[str] = []
        for word in name_words(name):
            for end in range(min(3, len(word)), len(word) + 1):
                entry = self.index("name", word[:end], 16)
                if entry not in entries:
                    entries.append(entry)
        return " " + " ".join(entries) + " " if entries else ""

    def name_query(self, text: str) -> list[str]:
        """Return the index entries that a name search must all match (each typed word as a word-start)."""
        return [f" {self.index('name', word, 16)} " for word in name_words(text)]

    def dob_index(self, iso_date: str) -> str:
        """Return the blind index of a date of birth (YYYY-MM-DD)."""
        return self.index("dob", iso_date)

    def search_indexes(self, answers: dict) -> dict[str, str | None]:
        """Return a submission's ``name_index`` and ``dob_index`` columns, computed from its answers."""
        return {"name_index": self.name_index(answers.get("full_name", "")),
                "dob_index": self.dob_index(answers["dob"]) if answers.get("dob") else None}


def name_words(text: str) -> list[str]:
    """Return the words of a name, case-folded and normalised (so that search ignores case and accents' forms)."""
    return [w for w in re.split(r"[\W_]+", unicodedata.normalize("NFKC", text).casefold()) if w]


def new_key() -> str:
    """Return a new random key, usable for SCREENING_ENCRYPTION_KEYS and SCREENING_INDEX_KEY."""
    return Fernet.generate_key().decode()


def vault() -> Vault:
    """Return the current app's vault."""
    return current_app.extensions["screening_vault"]


# -- binding each encrypted value to its table, column and row (associated data) ------------------------------
#
# Fernet has no associated data, so the plaintext carries it: BOUND + "table|column|row binding" + NUL + value.
# Fernet authenticates the whole plaintext, so the prefix cannot be changed; on reading, it must name the row the
# value was read from. A value copied from another row (or another column) is refused, never shown as this row's.
# The row binding is what identifies the row before it is inserted and never changes (Model.seal_binding): for a
# submission its reference and its clear outcome code, so that editing the outcome is detected too.

BOUND = b"screening-bound-v1\0"


def binding(table: str, row: dict) -> str:
    """Return the row binding of a ``table`` row given its clear columns (the models and migration 0005 agree)."""
    if table == "submission":
        return f"{row['reference']}|{row['outcome']}"
    if table == "draft":
        return str(row["token_hash"])
    if table == "review":
        return str(row["submission_id"])
    if table == "flag_acknowledgement":
        return f"{row['review_id']}|{row['flag_index']}"
    if table == "addendum":
        return f"{row['submission_id']}|{row['author_id']}|{_moment(row['created_at'])}"
    if table == "outbox":
        return str(row["uid"])
    raise VaultError(f"no row binding for table {table}")


def _moment(value) -> str:
    import datetime as dt

    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")


def seal(table: str, column: str, row_binding: str, plaintext: bytes) -> bytes:
    """Return ``plaintext`` prefixed with what it is bound to (then encrypted by the caller)."""
    return BOUND + f"{table}|{column}|{row_binding}".encode() + b"\0" + plaintext


def unseal(plaintext: bytes) -> tuple[str, bytes]:
    """Split a decrypted value into (what it is bound to, the value); raise VaultError for an unbound one."""
    if not plaintext.startswith(BOUND) or b"\0" not in plaintext[len(BOUND):]:
        raise VaultError("stored data is not bound to a row (written before migration 0005, or altered)")
    bound_to, _, value = plaintext[len(BOUND):].partition(b"\0")
    return bound_to.decode(), value


class _Bound:
    """Mixin of the values the ORM holds for encrypted columns: what they belong to travels with them."""

    _owner = None  # weakref to the model instance the value is set on or was loaded from
    _column = ""
    _table = ""
    _explicit = ""  # "table|column|row binding", for values written without an instance (a core UPDATE)
    _sealed_to = ""  # what the stored value said it was bound to, when it was read


class BoundDict(_Bound, dict):
    pass


class BoundList(_Bound, list):
    pass


class BoundStr(_Bound, str):
    pass


class BoundBytes(_Bound, bytes):
    pass


def _bound_copy(value):
    for kind, cls in ((dict, BoundDict), (list, BoundList), (str, BoundStr), (bytes, BoundBytes)):
        if isinstance(value, kind):
            return cls(value)
    if isinstance(value, (bytearray, memoryview)):
        return BoundBytes(bytes(value))
    raise TypeError(f"cannot encrypt a {type(value).__name__}")


def bound(value, table: str, column: str, row_binding: str):
    """Return ``value`` bound to a row for a write that has no model instance (``update(...).values(...)``)."""
    out = _bound_copy(value)
    out._explicit = f"{table}|{column}|{row_binding}"
    return out


def on_set(target, value, _old, initiator):
    """ORM "set" event of an encrypted column: remember which row and column the value is for."""
    import weakref

    if value is None:
        return None
    out = _bound_copy(value)
    out._owner = weakref.ref(target)
    out._table, out._column = target.__tablename__, initiator.key
    return out


def check_loaded(target, column_keys) -> None:
    """ORM "load"/"refresh" event: every encrypted value read must be bound to this row; raise VaultError if not."""
    import weakref

    expected_row = None
    for key in column_keys:
        value = target.__dict__.get(key)
        if value is None or not isinstance(value, _Bound):
            continue
        if expected_row is None:
            expected_row = target.seal_binding()
        if value._sealed_to != f"{target.__tablename__}|{key}|{expected_row}":
            logging.getLogger(__name__).error("%s.%s of row id %s is bound to another row or outcome: refused",
                                              target.__tablename__, key, getattr(target, "id", None))
            raise VaultError(f"{target.__tablename__}.{key} of this row was not written for it (copied from "
                             "another row, or a clear column was changed)")
        value._owner = weakref.ref(target)
        value._table, value._column = target.__tablename__, key


def bind_encrypted_columns(model) -> None:
    """Attach the events that bind ``model``'s encrypted columns to their rows."""
    from sqlalchemy import event, inspect

    keys = [c.key for c in inspect(model).columns if isinstance(c.type, _Encrypted)]
    if not keys:
        return
    for key in keys:
        event.listen(getattr(model, key), "set", on_set, retval=True)
    event.listen(model, "load", lambda target, _context: check_loaded(target, keys), restore_load_context=True)
    event.listen(model, "refresh", lambda target, _context, attrs: check_loaded(target, attrs or keys),
                 restore_load_context=True)


def check_column(value, table: str, column: str, row_binding: str):
    """Check a value read by a column-level select (no model instance to check it): bound to this row, or VaultError."""
    if value is not None and getattr(value, "_sealed_to", None) != f"{table}|{column}|{row_binding}":
        logging.getLogger(__name__).error("%s.%s bound to another row: refused", table, column)
        raise VaultError(f"{table}.{column} of this row was not written for it")
    return value


def raw(column):
    """Select an encrypted column's stored bytes, undecrypted (for lists that open each row with ``open_row``)."""
    from sqlalchemy import type_coerce

    return type_coerce(column, LargeBinary).label(f"{column.key}_raw")


def open_row(column, data: bytes | None, row_id: int, row_binding: str) -> tuple[Any, bool]:
    """Decrypt one row's value of an encrypted ``column``: (the value, True), or (None, False) when it cannot be read.

    A value no key opens (another key, or altered), or one bound to another row (copied, or the row's clear
    outcome changed), is logged by row id only, and spoils only its own row of a list.
    """
    if data is None:
        return None, True
    table = column.class_.__tablename__
    try:
        bound_to, value = unseal(vault().decrypt(data))
        if bound_to != f"{table}|{column.key}|{row_binding}":
            raise VaultError("bound to another row")
        return column.type.load(value), True
    except (VaultError, ValueError):
        logging.getLogger(__name__).error("%s.%s of row id %s cannot be decrypted with the configured keys, or is "
                                          "not bound to this row", table, column.key, row_id)
        return None, False


class _Encrypted(TypeDecorator):
    """A column stored as a Fernet token bound to its row; the ORM and queries see the plaintext value."""

    impl = LargeBinary
    cache_ok = True

    def dump(self, value: Any) -> bytes:
        raise NotImplementedError

    def load(self, data: bytes) -> Any:
        raise NotImplementedError

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        bound_to = getattr(value, "_explicit", "")
        owner = value._owner() if getattr(value, "_owner", None) is not None else None
        if owner is not None:
            bound_to = f"{value._table}|{value._column}|{owner.seal_binding()}"
        if not bound_to:
            raise VaultError("an encrypted value must be written through its model instance, or with crypto.bound()")
        table, column, row_binding = bound_to.split("|", 2)
        return vault().encrypt(seal(table, column, row_binding, self.dump(value)))

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        bound_to, data = unseal(vault().decrypt(value))
        out = _bound_copy(self.load(data))
        out._sealed_to = bound_to
        return out


class EncryptedJSON(_Encrypted):
    """A JSON value (dict or list), encrypted."""

    cache_ok = True

    def dump(self, value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()

    def load(self, data: bytes) -> Any:
        return json.loads(data)


class EncryptedText(_Encrypted):
    """A string, encrypted."""

    cache_ok = True

    def dump(self, value: str) -> bytes:
        return value.encode()

    def load(self, data: bytes) -> str:
        return data.decode()


class EncryptedBytes(_Encrypted):
    """Bytes (a PDF), encrypted."""

    cache_ok = True

    def dump(self, value: bytes) -> bytes:
        return bytes(value)

    def load(self, data: bytes) -> bytes:
        return data
