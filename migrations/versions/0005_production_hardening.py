"""production hardening (issue 11): keyed PDF digests; the key canary

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 09:00:00

- ``submission.pdf_sha256`` and ``review.pdf_sha256`` (plain SHA-256 of a reproducible PDF: a copy of the
  database could confirm a guess about whose it is) become ``pdf_hmac``: HMAC-SHA256 under a key derived
  from SCREENING_INDEX_KEY, recomputed here from each decrypted PDF.
- ``key_canary``: one row encrypted under the app's keys, which the app checks at start-up.
- Every encrypted value is re-written bound to its table, column and row (crypto.seal: the plaintext carries
  "table|column|row binding", which Fernet authenticates), so a value copied into another row is refused.

Runs inside the app (``flask --app wsgi db upgrade``), with its keys.
"""
import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BATCH = 100


def _vault():
    from screening.crypto import vault

    return vault()


def _redigest(table: str, old: str, new: str, digest) -> None:
    """Fill ``new`` from each row's decrypted PDF through ``digest``, in batches (one PDF in memory at a time)."""
    conn = op.get_bind()
    t = sa.table(table, sa.column("id", sa.Integer), sa.column("pdf", sa.LargeBinary), sa.column(new, sa.String))
    ids = [row.id for row in conn.execute(sa.select(t.c.id).where(t.c.pdf.is_not(None)).order_by(t.c.id))]
    for row_id in ids:
        data = conn.execute(sa.select(t.c.pdf).where(t.c.id == row_id)).scalar_one()
        conn.execute(t.update().where(t.c.id == row_id).values(**{new: digest(data)}))


# table -> (encrypted columns, the clear columns of its row binding: crypto.binding)
ENCRYPTED = {
    "draft": (("answers", "signature_name"), ("token_hash",)),
    "submission": (("answers", "result", "signature_name", "pdf"), ("reference", "outcome")),
    "review": (("note", "pdf"), ("submission_id",)),
    "flag_acknowledgement": (("note",), ("review_id", "flag_index")),
    "addendum": (("text",), ("submission_id", "author_id", "created_at")),
}


def _reseal(convert) -> None:
    """Re-write every encrypted value through ``convert(table, column, row, plaintext) -> plaintext``, row by row."""
    vault = _vault()
    conn = op.get_bind()
    for table, (columns, keys) in ENCRYPTED.items():
        t = sa.table(table, sa.column("id", sa.Integer), *[sa.column(c, sa.LargeBinary) for c in columns],
                     *[sa.column(k, sa.DateTime(timezone=True) if k == "created_at" else None) for k in keys])
        ids = [r.id for r in conn.execute(sa.select(t.c.id).order_by(t.c.id))]
        for row_id in ids:
            row = conn.execute(sa.select(t).where(t.c.id == row_id)).one()._mapping
            values = {c: vault.encrypt(convert(table, c, row, vault.decrypt(row[c])))
                      for c in columns if row[c] is not None}
            if values:
                conn.execute(t.update().where(t.c.id == row_id).values(**values))


def upgrade():
    vault = _vault()
    for table in ("submission", "review"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("pdf_hmac", sa.String(length=64), nullable=True))
        _redigest(table, "pdf_sha256", "pdf_hmac", lambda data: vault.pdf_digest(vault.decrypt(data)))
        with op.batch_alter_table(table) as batch:
            batch.drop_column("pdf_sha256")

    op.create_table(
        "key_canary",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("index_check", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    from screening.keycheck import CANARY_ID, canary_values

    canary = sa.table("key_canary", sa.column("id", sa.Integer), sa.column("sealed", sa.LargeBinary),
                      sa.column("index_check", sa.String), sa.column("created_at", sa.DateTime(timezone=True)))
    op.get_bind().execute(canary.insert().values(id=CANARY_ID, created_at=dt.datetime.now(dt.timezone.utc),
                                                 **canary_values(vault)))

    from screening.crypto import binding, seal

    _reseal(lambda table, column, row, data: seal(table, column, binding(table, dict(row)), data))


def downgrade():
    import hashlib

    vault = _vault()
    from screening.crypto import unseal

    _reseal(lambda table, column, row, data: unseal(data)[1])
    op.drop_table("key_canary")
    for table in ("submission", "review"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("pdf_sha256", sa.String(length=64), nullable=True))
        _redigest(table, "pdf_hmac", "pdf_sha256", lambda data: hashlib.sha256(vault.decrypt(data)).hexdigest())
        with op.batch_alter_table(table) as batch:
            batch.drop_column("pdf_hmac")
