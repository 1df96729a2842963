"""The ``flask screening ...`` commands."""

from __future__ import annotations

import contextlib
import json
import sys

import click
from flask import current_app
from flask.cli import AppGroup

from . import clock
from . import questions as qd
from . import records
from .rules import AnswersError, RulesError, evaluate, load_rules

screening_cli = AppGroup("screening", help="Screening: check rules, list questions, evaluate answers.")


@screening_cli.command("check-rules")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
def check_rules(path: str | None) -> None:
    """Check a rules file (default: the app's) against the data dictionary."""
    path = path or current_app.config["RULES_PATH"]
    try:
        ruleset = load_rules(path)
    except RulesError as exc:
        click.echo(f"{path}: {len(exc.problems)} problem(s):", err=True)
        for problem in exc.problems:
            click.echo("  " + problem.format(path), err=True)
        sys.exit(1)
    counts = ruleset.counts()
    click.echo(
        f"{path}: OK, {len(ruleset)} rules ({counts['do_not_treat']} do_not_treat, "
        f"{counts['defer']} defer, {counts['review']} review), "
        f"dictionary {qd.VERSION}, sha256 {ruleset.digest[:16]}"
    )


@screening_cli.command("questions")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def questions(fmt: str) -> None:
    """Print the data dictionary."""
    if fmt == "json":
        click.echo(json.dumps(qd.as_plain(), indent=2, ensure_ascii=False))
        return
    click.echo(f"Data dictionary {qd.VERSION}: {len(qd.QUESTIONS)} questions")
    for section in qd.SECTIONS:
        click.echo(f"\n== {section.title} ({section.id})")
        for q in qd.questions_in(section.id):
            flags = [q.type, "required" if q.required else "optional"]
            if q.asked_when:
                flags.append(f"asked when {_describe(q.asked_when)}")
            click.echo(f"  {q.id} [{', '.join(flags)}]")
            click.echo(f"      {q.label}")
            if q.choices and q.type not in (qd.YES_NO, qd.YES_NO_UNSURE):
                click.echo(f"      choices: {', '.join(q.choice_codes())}")
            for f in q.fields:
                codes = f" ({', '.join(f.choice_codes())})" if f.choices and f.type != qd.AREAS else ""
                click.echo(f"      - {f.id}: {f.type}{codes}")


def _describe(cond: dict) -> str:
    value = cond.get("value")
    if isinstance(value, list):
        value = "any of " + ", ".join(value)
    return f"{cond['question']} {cond['op']} {value}"


@screening_cli.command("evaluate")
@click.argument("source", type=click.File("r"))
@click.option("--answered-on", "answered_on", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="The day the answers were given, YYYY-MM-DD (default: today).")
def evaluate_cmd(source, answered_on) -> None:
    """Evaluate one JSON answers file (or - for standard input) and print the result."""
    try:
        answers = json.load(source)
    except json.JSONDecodeError as exc:
        click.echo(f"error: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}", err=True)
        sys.exit(2)
    from . import current_rules

    try:
        result = evaluate(current_rules(), answers,
                          answered_on=answered_on.date() if answered_on else clock.today())
    except AnswersError as exc:
        click.echo("error: the answers cannot be evaluated:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        if exc.missing:
            click.echo("  missing required answers: " + ", ".join(exc.missing), err=True)
        sys.exit(2)
    click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))


@contextlib.contextmanager
def _reported(reference: str):
    """Turn an unknown reference or a records error into one clear line on stderr and exit status 1."""
    from .errors import SubmissionNotFound

    try:
        yield
    except SubmissionNotFound:
        click.echo(f"error: no submission has the reference {reference!r}", err=True)
        sys.exit(1)
    except records.RecordsError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@screening_cli.command("pdf")
@click.argument("reference")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, writable=True),
              help="File to write the PDF to.")
def pdf_cmd(reference: str, output: str) -> None:
    """Write a stored submission's PDF to a file (rendering it first if needed)."""
    from .extensions import db
    from .services import ensure_pdf, find_submission

    with _reported(reference):
        submission = find_submission(db.session, reference)
    data = ensure_pdf(db.session, submission, current_app.config["CLINIC"])
    import os
    import tempfile

    # A temporary file beside the target, renamed over it once complete: a full disk or a crash never
    # leaves a partial PDF under the target's name (mode 0600: it holds health data).
    temp = None
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(output)}.", suffix=".partial",
                                    dir=os.path.dirname(os.path.abspath(output)))
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, output)
    except OSError as exc:
        if temp is not None and os.path.exists(temp):
            os.unlink(temp)
        click.echo(f"error: cannot write {output}: {exc.strerror or exc}; nothing was written", err=True)
        sys.exit(1)
    click.echo(f"wrote {output} ({len(data)} bytes)")  # no digest: a hash of the PDF would say whose it is


@screening_cli.command("render-pdfs")
def render_pdfs() -> None:
    """Render every PDF not yet rendered, then exit (non-zero if any failed); the worker does this as they arrive."""
    from .extensions import db
    from .services import render_pending

    failed: set[int] = set()
    total = render_pending(db.session, current_app.config["CLINIC"], failed=failed)
    db.session.remove()
    click.echo(f"rendered {total} PDF(s)" + (f"; {len(failed)} failed (see the log)" if failed else ""))
    if failed:
        sys.exit(1)


@screening_cli.command("worker")
@click.option("-w", "--workers", default=2, show_default=True, type=click.IntRange(min=1),
              help="Tasks run at once (threads).")
@click.option("--no-periodic", is_flag=True, help="Do not run the sweep every minute (another worker does).")
def worker_cmd(workers: int, no_periodic: bool) -> None:
    """Run the task queue's worker: PDFs, email, and every minute a sweep for what was lost. Stop it with Ctrl-C."""
    import logging
    import os

    from . import logsafe, tasks

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(logsafe.WithholdMessages())  # no error message (it may quote data) from any logger
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    config = current_app.config
    if not config["MAIL_URL"]:
        click.echo(f"Email is not sent: every message is written to {config['MAIL_DIR']}/", err=True)
    try:
        os.nice(5)  # the web server's requests go first on a shared machine
    except OSError:
        pass
    tasks.run_worker(current_app._get_current_object(), workers, periodic=not no_periodic)


@screening_cli.command("mail-test")
@click.argument("address")
def mail_test_cmd(address: str) -> None:
    """Send a test message to ADDRESS now, through SCREENING_MAIL_URL (or into the mail folder), and say how it went."""
    from . import mail
    from .extensions import db

    row = mail.queue(db.session, mail.compose("test", address), kind="test")
    outbox_id = row.id
    db.session.info.pop("screening_outbox", None)  # sent here and now, not by the worker
    db.session.commit()
    outcome = mail.deliver(db.session, outbox_id)
    db.session.remove()
    if outcome.status == "sent":
        where = "written to " + current_app.config["MAIL_DIR"] if not current_app.config["MAIL_URL"] else "sent"
        click.echo(f"test message {where}")
        return
    click.echo(f"error: the test message was not sent: {outcome.reason}"
               + (" (the worker tries it again)" if outcome.status == "retry" else ""), err=True)
    sys.exit(1)


@screening_cli.command("new-key")
def new_key_cmd() -> None:
    """Print a new random key for SCREENING_ENCRYPTION_KEYS or SCREENING_INDEX_KEY."""
    from .crypto import new_key

    click.echo(new_key())


@screening_cli.command("rotate-keys")
def rotate_keys_cmd() -> None:
    """Re-encrypt everything under the newest key in SCREENING_ENCRYPTION_KEYS and rebuild the search indexes."""
    from .extensions import db
    from .services import rotate_keys

    counts = rotate_keys(db.session)
    click.echo("re-encrypted under the newest key: " + ", ".join(f"{n} {table}" for table, n in counts.items()))
    click.echo("Older keys can now be removed from SCREENING_ENCRYPTION_KEYS (keep them with old backups).")


@screening_cli.command("purge-drafts")
def purge_drafts() -> None:
    """Delete every expired draft."""
    from sqlalchemy import delete

    from .extensions import db
    from .models import Draft, utcnow

    count = db.session.execute(delete(Draft).where(Draft.expires_at < utcnow())).rowcount
    db.session.commit()
    click.echo(f"deleted {count} expired draft(s)")


# -- backups, retention and the client's rights (screening/records.py) ------------------------------


@screening_cli.command("backup")
@click.argument("directory", type=click.Path())
def backup_cmd(directory: str) -> None:
    """Back up the database into DIRECTORY while the app runs (SQLite: online copy; PostgreSQL: pg_dump)."""
    from .extensions import db

    try:
        result = records.backup(db.engine.url, directory)
    except records.PgDumpMissing as exc:
        click.echo(f"error: {exc}", err=True)
        click.echo(records.KEYS_NOTE, err=True)
        sys.exit(1)
    except records.BackupError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    how = {"online": "online copy", "locked": "online copy, finished under a read lock as the app kept writing",
           "pg_dump": "pg_dump, custom format"}[result.method]
    click.echo(f"wrote {result.path} ({result.size:,} bytes, sha256 {result.sha256}; {how})")
    if result.method == "pg_dump":
        click.echo("Restore it into a new, empty database: createdb NEW_DB && "
                   f"pg_restore --no-owner --exit-on-error --dbname=NEW_DB {result.path}")
    else:
        click.echo("Restore it by stopping the app and copying it over the database file "
                   "(or pointing SCREENING_DATABASE_URL at a copy of it).")
    click.echo(records.KEYS_NOTE)


@screening_cli.command("purge")
@click.option("--before", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="Delete submissions submitted before this date (UTC). Default: today minus the retention period.")
@click.option("--yes", is_flag=True, help="Delete them; without it, only list what would be deleted.")
@click.option("--force", is_flag=True, help="Allow a date later than today minus the retention period.")
def purge_cmd(before, yes: bool, force: bool) -> None:
    """Delete submissions older than the retention period (SCREENING_RETENTION_YEARS); a dry run unless --yes."""
    from .extensions import db

    years = int(current_app.config["RETENTION_YEARS"])
    cutoff = records.retention_cutoff(records.today(), years)
    day = before.date() if before else cutoff
    try:
        records.check_before(day, cutoff, years, force=force)
    except records.TooRecent as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"Retention period: {years} years. Submissions submitted before {day.isoformat()} (00:00 UTC):")
    if not yes:
        candidates = records.purge_candidates(db.session, day)
        for c in candidates:
            click.echo(f"  {c.reference}  submitted {c.submitted_at:%Y-%m-%d}")
        click.echo(f"{len(candidates)} submission(s) would be deleted, with their reviews, acknowledgements, "
                   "addenda and arrivals.")
        click.echo("Dry run: nothing was deleted. Run again with --yes to delete them.")
        return
    candidates, deleted = records.purge(db.session, day)
    for c in candidates:
        click.echo(f"  {c.reference}  submitted {c.submitted_at:%Y-%m-%d}  deleted")
    click.echo(f"deleted {deleted.describe()}")


@screening_cli.command("export")
@click.argument("reference")
@click.option("-o", "--output", "directory", required=True, type=click.Path(),
              help="Directory to write REFERENCE/ into (record.json and the PDFs).")
@click.option("--reason", default="", help=f"Why (at most {records.REASON_MAX} characters, kept in the audit "
                                            "trail: no health data).")
def export_cmd(reference: str, directory: str, reason: str) -> None:
    """Export one client's record (JSON and PDFs), e.g. for a subject access request."""
    from .extensions import db

    with _reported(reference):
        result = records.export(db.session, reference, directory, current_app.config["CLINIC"], reason=reason)
    click.echo(f"wrote {result.path}: {', '.join(result.files)}")
    click.echo("It holds health data: send it to the client securely and delete your copy afterwards.")


@screening_cli.command("erase")
@click.argument("reference")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--reason", default="", help=f"Why (at most {records.REASON_MAX} characters, kept in the audit "
                                            "trail: no health data).")
def erase_cmd(reference: str, yes: bool, reason: str) -> None:
    """Erase one client's submission and everything attached to it (review, addenda, arrival)."""
    from .errors import SubmissionNotFound
    from .extensions import db

    with _reported(reference):
        records.clean_reason(reason)
        stored = records.find_reference(db.session, reference)
    db.session.rollback()
    if not yes:
        click.confirm(f"Erase submission {stored} with its review, acknowledgements, addenda and arrival? "
                      "This cannot be undone (backups keep it until they are deleted)", abort=True)
    try:
        stored, deleted = records.erase(db.session, stored, reason=reason)
    except SubmissionNotFound:
        click.echo(f"error: no submission has the reference {reference!r} (erased meanwhile?)", err=True)
        sys.exit(1)
    click.echo(f"erased {stored}: {deleted.describe()}")


def _ask_password() -> str:
    return click.prompt("Password (at least 12 characters)", hide_input=True, confirmation_prompt=True)


@screening_cli.command("create-user")
@click.argument("email")
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice(["admin", "practitioner", "desk"]), help="Repeat for several roles.")
@click.option("--name", default="", help="The person's name, as shown on sign-offs.")
def create_user_cmd(email: str, roles: tuple[str, ...], name: str) -> None:
    """Create a staff account; the password is asked for, never taken as an argument."""
    from .extensions import db
    from .staff.accounts import AccountError, create_user

    try:
        user = create_user(db.session, email, name, list(roles), _ask_password())
    except AccountError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"created {user.email} ({user.roles})")


def _account_command(email: str, change) -> None:
    """Run ``change(session, user)`` on the account for ``email`` (the web's use case); exit 1 with why not."""
    from .extensions import db
    from .staff.accounts import AccountError, find_user

    try:
        change(db.session, find_user(db.session, email))
    except AccountError as exc:
        db.session.rollback()
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@screening_cli.command("deactivate-user")
@click.argument("email")
def deactivate_user_cmd(email: str) -> None:
    """Deactivate a staff account and end its sessions (never the last active admin)."""
    from .staff import people_services

    _account_command(email, lambda session, user: people_services.deactivate(session, user))
    click.echo(f"deactivated {email.strip().lower()}")


@screening_cli.command("reactivate-user")
@click.argument("email")
def reactivate_user_cmd(email: str) -> None:
    """Let a deactivated staff account sign in again, with the password it had."""
    from .staff import people_services

    _account_command(email, lambda session, user: people_services.reactivate(session, user))
    click.echo(f"reactivated {email.strip().lower()}")


@screening_cli.command("reset-password")
@click.argument("email")
def reset_password_cmd(email: str) -> None:
    """Set a new password for a staff account (asked for): its sessions and emailed links end; it is told by email."""
    from .staff import people_services

    def change(session, user) -> None:
        people_services.set_password_by_command(session, user, _ask_password())

    _account_command(email, change)
    click.echo(f"new password set for {email.strip().lower()}")


@screening_cli.command("invite-user")
@click.argument("email")
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice(["admin", "practitioner", "desk"]), help="Repeat for several roles.")
@click.option("--name", required=True, help="The person's full name, as shown on sign-offs.")
def invite_user_cmd(email: str, roles: tuple[str, ...], name: str) -> None:
    """Invite a member of staff: they are emailed a link to choose their own password (as from the admin pages)."""
    from .extensions import db
    from .staff.accounts import AccountError
    from .staff.people_services import invite

    try:
        user = invite(db.session, email=email, name=name, roles=list(roles))
    except AccountError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"invited {user.email} ({user.roles}): the invitation is queued for the worker to send")
