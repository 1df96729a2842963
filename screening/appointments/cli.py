"""Appointment commands: ``flask screening api-token create|revoke|list``, ``import-appointments``, reminders."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup
from sqlalchemy import select

from .. import clock
from ..cli import screening_cli
from ..extensions import db

api_token = AppGroup("api-token", help="Bearer tokens for booking systems that use the appointments API.")
screening_cli.add_command(api_token)


@api_token.command("create")
@click.argument("name")
def create_token_cmd(name: str) -> None:
    """Create a token for the integration NAME and print it once (only its hash is kept)."""
    from .api import create_token
    from .models import ApiToken

    name = name.strip()
    if not name or len(name) > 60:
        click.echo("error: NAME must be 1 to 60 characters, such as the booking system's name", err=True)
        sys.exit(2)
    if db.session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        click.echo(f"error: a token named {name!r} exists already (revoke it, then create one with a new name)",
                   err=True)
        sys.exit(1)
    token = create_token(db.session, name)
    click.echo(token)
    click.echo(f"Token for {name}: give it to the booking system now; it is not shown again.", err=True)


@api_token.command("revoke")
@click.argument("name")
def revoke_token_cmd(name: str) -> None:
    """Revoke the token of the integration NAME: its requests are refused from now on."""
    from .api import revoke_token

    if not revoke_token(db.session, name):
        click.echo(f"error: no live token is named {name!r}", err=True)
        sys.exit(1)
    click.echo(f"revoked {name}")


@api_token.command("list")
def list_tokens_cmd() -> None:
    """List the tokens: name, created, last used, revoked."""
    from .models import ApiToken

    for t in db.session.scalars(select(ApiToken).order_by(ApiToken.name)):
        state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "live"
        used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
        click.echo(f"{t.name}\tcreated {t.created_at:%Y-%m-%d}\tlast used {used}\t{state}")


@screening_cli.command("import-appointments")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def import_appointments_cmd(path: str) -> None:
    """Import appointments from a CSV file: all or nothing (exit 1 and every problem listed by line and column)."""
    from .csv_import import MAX_BYTES, import_bytes

    with open(path, "rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    result = import_bytes(db.session, data, today=clock.today(), source="csv:cli", actor_id=None)
    if result.problems:
        for p in result.problems:
            where = f"line {p.line}" if p.line else "file"
            click.echo(f"{path}: {where}{', column ' + p.column if p.column else ''}: {p.message}", err=True)
        click.echo("nothing was imported", err=True)
        sys.exit(1)
    click.echo(f"imported {result.created} appointment(s); {result.unchanged} already there")


@screening_cli.command("send-reminders")
def send_reminders_cmd() -> None:
    """Queue today's reminders now (the worker does it every ten minutes; for a clinic that runs cron instead)."""
    from .services import send_reminders

    click.echo(f"queued {send_reminders(db.session, clock.today())} reminder(s)")
