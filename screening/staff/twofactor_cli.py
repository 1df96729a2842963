"""``flask screening reset-two-factor EMAIL``: the admin's reset from the command line (twofactor.reset).

For the clinic whose only admin has lost their phone and their recovery codes: no admin is left to reset it in the
browser. The same use case as the web's: second factors and recovery codes removed, sessions ended, the person
emailed, audited (with no actor: the command line's).
"""

from __future__ import annotations

import sys

import click

from ..cli import screening_cli
from ..extensions import db


@screening_cli.command("reset-two-factor")
@click.argument("email")
def reset_two_factor_cmd(email: str) -> None:
    """Remove a staff account's passkeys, authenticator app and recovery codes; it sets up new ones at sign-in."""
    from . import twofactor
    from .accounts import AccountError, find_user

    try:
        user = find_user(db.session, email)
        twofactor.reset(db.session, user)
    except (AccountError, twofactor.TwoFactorError) as exc:
        db.session.rollback()
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"second factors removed for {user.email}: they set up a new one at their next sign-in (emailed)")
