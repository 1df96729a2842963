"""The staff side of clients: find a client, their history across visits, merge a duplicate, attach a walk-in."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from ..errors import SubmissionNotFound
from ..extensions import db
from ..staff.access import roles
from ..staff.views import bp
from . import services

# Everyone on the staff finds a client; the history's outcomes and changes are for practitioners (and admins
# reading them as practitioners do not: least privilege, as on the desk).
VIEW_ROLES = ("desk", "admin", "practitioner")
MERGE_ROLES = ("practitioner",)
ATTACH_ROLES = ("desk", "admin", "practitioner")
QUERY_MAX = 100


def _client_or_404(uid: str):
    client = services.by_uid(db.session, uid)
    if client is None:
        abort(404)
    return client


@bp.get("/clients")
@roles(*VIEW_ROLES)
def clients():
    """Find a client by name, date of birth (YYYY-MM-DD) or email."""
    query = (request.args.get("q") or "").strip()[:QUERY_MAX]
    found = services.search(db.session, query) if query else []
    return render_template("clients/search.html", query=query, found=found)


def _client_page(client, errors: dict[str, str] | None = None, typed: dict[str, str] | None = None,
                 status: int = 200):
    live = services.current(db.session, client)
    if live is not client:
        return redirect(url_for(".client", client_uid=live.uid))
    data = services.history(db.session, client)
    errors = errors or {}
    summary = [(key, message) for key, message in errors.items()]
    return render_template("clients/client.html", c=client, form=FlaskForm(), errors=errors, summary=summary,
                           typed=typed or {}, health=g.staff.has_role("practitioner"),
                           can_merge=g.staff.has_role(*MERGE_ROLES), **data), status


@bp.get("/clients/<client_uid>")
@roles(*VIEW_ROLES)
def client(client_uid: str):
    """One client's appointments, screenings, sign-offs and sessions, and what changed between screenings."""
    return _client_page(_client_or_404(client_uid))


@bp.post("/clients/<client_uid>/merge")
@roles(*MERGE_ROLES)
def merge(client_uid: str):
    """Merge a duplicate record (the desk made a second one, say with a new email) into this one."""
    keep = _client_or_404(client_uid)
    form = FlaskForm()
    if not form.validate():
        abort(400)
    other_uid = (request.form.get("duplicate") or "").strip()
    duplicate = services.by_uid(db.session, other_uid)
    if duplicate is None:
        return _client_page(keep, {"duplicate": "Choose the record to merge into this one"}, status=400)
    try:
        services.merge(db.session, keep, duplicate, actor_id=g.staff.id)
    except services.MergeRefused as exc:
        return _client_page(keep, {"duplicate": str(exc)}, status=409)
    flash("The two records are now one: everything of the other record is listed here.")
    return redirect(url_for(".client", client_uid=keep.uid), code=303)


@bp.post("/clients/<client_uid>/attach")
@roles(*ATTACH_ROLES)
def attach_to_client(client_uid: str):
    """Attach a screening sent without an invitation (a walk-in) to this client, by its reference."""
    target = _client_or_404(client_uid)
    form = FlaskForm()
    if not form.validate():
        abort(400)
    reference = (request.form.get("reference") or "").strip()[:40]
    if not reference:
        return _client_page(target, {"reference": "Enter the screening’s reference, like K7QM-4TXR"}, status=400)
    try:
        services.attach_screening(db.session, target, reference, actor_id=g.staff.id)
    except SubmissionNotFound:
        return _client_page(target, {"reference": "There is no screening with that reference. Check it on the "
                                                  "client’s confirmation"}, {"reference": reference}, status=400)
    except ValueError as exc:
        return _client_page(target, {"reference": str(exc)}, {"reference": reference}, status=409)
    flash("The screening is on this client’s record now.")
    return redirect(url_for(".client", client_uid=target.uid), code=303)
