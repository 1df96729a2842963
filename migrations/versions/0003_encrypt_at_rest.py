"""encrypt health data at rest; blind indexes replace the clear name and date of birth

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 05:00:00

Every answer, result, signature, note and PDF is re-written as a Fernet token under the newest key
in SCREENING_ENCRYPTION_KEYS (the app's keys: ``flask --app wsgi db upgrade`` runs inside the app).
"""
import datetime as dt
import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# table -> column -> (kind, nullable)
ENCRYPTED = {
    "draft": {"answers": ("json", False), "signature_name": ("text", True)},
    "submission": {"answers": ("json", False), "result": ("json", False), "signature_name": ("text", False),
                   "pdf": ("bytes", True)},
    "review": {"note": ("text", False), "pdf": ("bytes", True)},
    "flag_acknowledgement": {"note": ("text", False)},
    "addendum": {"text": ("text", False)},
}


def _vault():
    from screening.crypto import vault

    return vault()


def _encode(kind, value):
    if value is None:
        return None
    if kind == "json":
        if isinstance(value, (str, bytes)):
            value = json.loads(value)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    if kind == "text":
        return value.encode()
    return bytes(value)


def _decode(kind, data):
    if data is None:
        return None
    if kind == "json":
        return json.loads(data)
    if kind == "text":
        return data.decode()
    return data


def _rewrite(table, columns, convert, old_suffix, new_suffix):
    """Copy each column ``c + old_suffix`` into ``c + new_suffix`` through ``convert(kind, value)``."""
    conn = op.get_bind()
    t = sa.table(table, sa.column("id"), *[sa.column(c + old_suffix) for c in columns],
                 *[sa.column(c + new_suffix) for c in columns])
    rows = conn.execute(sa.select(t.c.id, *[t.c[c + old_suffix] for c in columns])).all()
    for row in rows:
        values = {c + new_suffix: convert(columns[c][0], row[i + 1]) for i, c in enumerate(columns)}
        conn.execute(t.update().where(t.c.id == row.id).values(**values))


def upgrade():
    vault = _vault()
    for table, columns in ENCRYPTED.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.add_column(sa.Column(column + "_enc", sa.LargeBinary(), nullable=True))
        _rewrite(table, columns, lambda kind, value: None if value is None else vault.encrypt(_encode(kind, value)),
                 "", "_enc")
        with op.batch_alter_table(table) as batch:
            for column, (_kind, nullable) in columns.items():
                batch.drop_column(column)
                batch.alter_column(column + "_enc", new_column_name=column, existing_type=sa.LargeBinary(),
                                   nullable=nullable)

    with op.batch_alter_table("submission") as batch:
        batch.add_column(sa.Column("name_index", sa.Text(), nullable=True))
        batch.add_column(sa.Column("dob_index", sa.String(length=32), nullable=True))
    conn = op.get_bind()
    t = sa.table("submission", sa.column("id"), sa.column("answers"), sa.column("name_index"),
                 sa.column("dob_index"))
    for row in conn.execute(sa.select(t.c.id, t.c.answers)).all():
        conn.execute(t.update().where(t.c.id == row.id).values(
            **vault.search_indexes(json.loads(vault.decrypt(row.answers)))))
    with op.batch_alter_table("submission") as batch:
        batch.drop_index("ix_submission_search_name")
        batch.drop_index("ix_submission_dob")
        batch.drop_column("search_name")
        batch.drop_column("dob")
        batch.alter_column("name_index", existing_type=sa.Text(), nullable=False)
        batch.create_index("ix_submission_dob_index", ["dob_index"], unique=False)
        batch.create_index("ix_submission_name_index", ["name_index"], unique=False)


def downgrade():
    vault = _vault()
    with op.batch_alter_table("submission") as batch:
        batch.add_column(sa.Column("search_name", sa.String(length=120), nullable=True))
        batch.add_column(sa.Column("dob", sa.Date(), nullable=True))
    conn = op.get_bind()
    t = sa.table("submission", sa.column("id"), sa.column("answers"), sa.column("search_name"), sa.column("dob"))
    for row in conn.execute(sa.select(t.c.id, t.c.answers)).all():
        answers = json.loads(vault.decrypt(row.answers))
        conn.execute(t.update().where(t.c.id == row.id).values(
            search_name=" ".join(answers.get("full_name", "").split()).casefold()[:120],
            dob=dt.date.fromisoformat(answers["dob"]) if answers.get("dob") else None))
    with op.batch_alter_table("submission") as batch:
        batch.drop_index("ix_submission_dob_index")
        batch.drop_index("ix_submission_name_index")
        batch.drop_column("name_index")
        batch.drop_column("dob_index")
        batch.alter_column("search_name", existing_type=sa.String(length=120), nullable=False)
        batch.create_index("ix_submission_search_name", ["search_name"], unique=False)
        batch.create_index("ix_submission_dob", ["dob"], unique=False)

    for table, columns in ENCRYPTED.items():
        with op.batch_alter_table(table) as batch:
            for column, (kind, _nullable) in columns.items():
                clear = {"json": sa.JSON(), "text": sa.Text(), "bytes": sa.LargeBinary()}[kind]
                batch.add_column(sa.Column(column + "_clear", clear, nullable=True))
        conn = op.get_bind()
        t = sa.table(table, sa.column("id"), *[sa.column(c) for c in columns],
                     *[sa.column(c + "_clear", {"json": sa.JSON(), "text": sa.Text(), "bytes": sa.LargeBinary()}[k])
                       for c, (k, _n) in columns.items()])
        for row in conn.execute(sa.select(t.c.id, *[t.c[c] for c in columns])).all():
            values = {c + "_clear": None if row[i + 1] is None else _decode(columns[c][0], vault.decrypt(row[i + 1]))
                      for i, c in enumerate(columns)}
            conn.execute(t.update().where(t.c.id == row.id).values(**values))
        with op.batch_alter_table(table) as batch:
            for column, (kind, nullable) in columns.items():
                batch.drop_column(column)
                batch.alter_column(column + "_clear", new_column_name=column, nullable=nullable)
