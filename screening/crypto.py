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


def raw(column):
    """Select an encrypted column's stored bytes, undecrypted (for lists that open each row with ``open_row``)."""
    from sqlalchemy import type_coerce

    return type_coerce(column, LargeBinary).label(f"{column.key}_raw")


def open_row(column, data: bytes | None, row_id: int) -> tuple[Any, bool]:
    """Decrypt one row's value of an encrypted ``column``: (the value, True), or (None, False) when it cannot be read.

    A value no key opens (another key, or altered) is logged by row id only, and spoils only its own row of a list.
    """
    if data is None:
        return None, True
    try:
        return column.type.load(vault().decrypt(data)), True
    except (VaultError, ValueError):
        logging.getLogger(__name__).error("%s.%s of row id %s cannot be decrypted with the configured keys",
                                          column.class_.__tablename__, column.key, row_id)
        return None, False


class _Encrypted(TypeDecorator):
    """A column stored as a Fernet token; the ORM and queries see the plaintext value."""

    impl = LargeBinary
    cache_ok = True

    def dump(self, value: Any) -> bytes:
        raise NotImplementedError

    def load(self, data: bytes) -> Any:
        raise NotImplementedError

    def process_bind_param(self, value, dialect):
        return None if value is None else vault().encrypt(self.dump(value))

    def process_result_value(self, value, dialect):
        return None if value is None else self.load(vault().decrypt(value))


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
