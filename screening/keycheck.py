"""The start-up check that the configured keys are the database's own (a stored canary).

A valid but unrelated key would otherwise be accepted: staff pages would fail on every row, and the public form
would go on storing submissions no one can read with the right key. The ``key_canary`` table holds one known
text encrypted under the encryption keys and its blind index under the index key, written on the first start
(or by migration 0005). The app opens it at start-up and refuses to start (exit status 4) with keys that do
not. ``rotate-keys`` re-writes it under the newest keys.
"""

from __future__ import annotations

import logging

from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from .config import ConfigError
from .crypto import Vault, VaultError
from .models import utcnow

log = logging.getLogger(__name__)

CANARY_TEXT = b"screening key canary v1"
CANARY_ID = 1


def canary_values(keys: Vault) -> dict:
    """Return the canary row's columns under ``keys`` (the newest encryption key, the current index key)."""
    return {"sealed": keys.encrypt(CANARY_TEXT), "index_check": keys.index("canary", CANARY_TEXT.decode())}


def check_keys(session: Session, keys: Vault, *, index_key_changed: bool = False) -> str:
    """Open the canary with ``keys``; write it first if the table is empty. Return "checked", "created" or "no table".

    Raise ConfigError, saying which key is wrong, when the keys do not open it. Uses a connection of its own,
    closed before it returns.
    """
    from .models import KeyCanary

    table = KeyCanary.__table__
    with session.get_bind().connect() as conn:
        if not inspect(conn).has_table(table.name):
            return "no table"  # a database not migrated yet: `flask db upgrade` writes the canary
        row = conn.execute(select(table.c.sealed, table.c.index_check).where(table.c.id == CANARY_ID)).first()
        if row is None:
            try:
                conn.execute(table.insert().values(id=CANARY_ID, created_at=utcnow(), **canary_values(keys)))
                conn.commit()
                return "created"
            except IntegrityError:  # another process wrote it at the same moment: check theirs
                conn.rollback()
                row = conn.execute(select(table.c.sealed, table.c.index_check)
                                   .where(table.c.id == CANARY_ID)).first()
        conn.rollback()  # end the read
    sealed, index_check = bytes(row.sealed), row.index_check
    try:
        opened = keys.decrypt(sealed) == CANARY_TEXT
    except VaultError:
        opened = False
    if not opened:
        raise ConfigError("SCREENING_ENCRYPTION_KEYS holds none of the keys this database was encrypted with "
                          "(its key check does not open). Set the database's keys; a new key goes first, "
                          "followed by the old one, until `flask --app wsgi screening rotate-keys` has run.")
    if index_check != keys.index("canary", CANARY_TEXT.decode()) and not index_key_changed:
        raise ConfigError("SCREENING_INDEX_KEY is not the key this database's search indexes were built with. "
                          "Set the database's index key; to change it on purpose, run "
                          "`SCREENING_INDEX_KEY_CHANGED=1 flask --app wsgi screening rotate-keys` with the new one.")
    return "checked"


def check_at_start(app) -> None:
    """Check the keys as the app starts; when the database cannot be reached, check on the first request instead."""
    from .crypto import vault
    from .extensions import db

    with app.app_context():
        try:
            check_keys(db.session, vault(), index_key_changed=app.config["INDEX_KEY_CHANGED"])
            app.extensions["screening_keys_checked"] = True
        except OperationalError as exc:
            log.warning("could not check the keys at start-up (database error %s); checking on the first request",
                        type(exc.orig).__name__)
            app.extensions["screening_keys_checked"] = False
        except ConfigError:
            db.session.remove()
            db.engine.dispose()  # the app will not start: close its connections
            raise
        finally:
            db.session.remove()


def check_on_request(app) -> None:
    """Before a request, when the start-up check could not run: check now; answer 503 while the keys are wrong."""
    from flask import abort

    from .crypto import vault
    from .extensions import db

    if app.extensions.get("screening_keys_checked", True):
        return
    try:
        check_keys(db.session, vault(), index_key_changed=app.config["INDEX_KEY_CHANGED"])
    except ConfigError as exc:
        log.critical("refusing requests: %s", exc)
        abort(503)
    app.extensions["screening_keys_checked"] = True
