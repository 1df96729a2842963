"""The ``flask screening ...`` commands."""

from __future__ import annotations

import json
import sys

import click
from flask import current_app
from flask.cli import AppGroup

from . import questions as qd
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
def evaluate_cmd(source) -> None:
    """Evaluate one JSON answers file (or - for standard input) and print the result."""
    try:
        answers = json.load(source)
    except json.JSONDecodeError as exc:
        click.echo(f"error: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}", err=True)
        sys.exit(2)
    from . import current_rules

    try:
        result = evaluate(current_rules(), answers)
    except AnswersError as exc:
        click.echo("error: the answers cannot be evaluated:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        if exc.missing:
            click.echo("  missing required answers: " + ", ".join(exc.missing), err=True)
        sys.exit(2)
    click.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))


@screening_cli.command("pdf")
@click.argument("reference")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, writable=True),
              help="File to write the PDF to.")
def pdf_cmd(reference: str, output: str) -> None:
    """Write a stored submission's PDF to a file (rendering it first if needed)."""
    from .errors import SubmissionNotFound
    from .extensions import db
    from .services import ensure_pdf, find_submission

    try:
        submission = find_submission(db.session, reference)
    except SubmissionNotFound:
        click.echo(f"error: no submission has the reference {reference!r}", err=True)
        sys.exit(1)
    data = ensure_pdf(db.session, submission, current_app.config["CLINIC"])
    with open(output, "wb") as fh:
        fh.write(data)
    click.echo(f"wrote {output} ({len(data)} bytes, sha256 {submission.pdf_sha256[:16]})")


@screening_cli.command("render-pdfs")
@click.option("--watch", is_flag=True, help="Keep running, rendering new submissions' PDFs as they arrive.")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(min=0.05),
              help="With --watch: seconds between looks for new submissions.")
def render_pdfs(watch: bool, interval: float) -> None:
    """Render every PDF not yet rendered; with --watch, the renderer process for SCREENING_PDF_BACKGROUND=worker."""
    import os
    import signal
    import threading

    from .extensions import db
    from .services import render_pending

    os.nice(10)  # the app's workers serve clients first
    stop = threading.Event()
    if watch:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    total, failed = 0, set()
    while True:
        total += render_pending(db.session, current_app.config["CLINIC"], stop=stop, failed=failed)
        if not watch or stop.wait(interval):
            break
    db.session.remove()
    click.echo(f"rendered {total} PDF(s)" + (f"; {len(failed)} failed (see the log)" if failed else ""))
    if failed and not watch:
        sys.exit(1)


@screening_cli.command("purge-drafts")
def purge_drafts() -> None:
    """Delete every expired draft."""
    from sqlalchemy import delete

    from .extensions import db
    from .models import Draft, utcnow

    count = db.session.execute(delete(Draft).where(Draft.expires_at < utcnow())).rowcount
    db.session.commit()
    click.echo(f"deleted {count} expired draft(s)")


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


@screening_cli.command("deactivate-user")
@click.argument("email")
def deactivate_user_cmd(email: str) -> None:
    """Deactivate a staff account and end its sessions."""
    from .extensions import db
    from .staff.accounts import AccountError, deactivate

    try:
        user = deactivate(db.session, email)
    except AccountError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"deactivated {user.email}")


@screening_cli.command("reset-password")
@click.argument("email")
def reset_password_cmd(email: str) -> None:
    """Set a new password for a staff account (asked for) and end its sessions."""
    from .extensions import db
    from .staff.accounts import AccountError, reset_password

    try:
        user = reset_password(db.session, email, _ask_password())
    except AccountError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(f"new password set for {user.email}")
