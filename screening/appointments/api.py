"""The JSON API for booking systems: create, read, update and cancel appointments by the booking system's id.

Each integration has its own bearer token (``flask --app wsgi screening api-token create NAME``; stored hashed;
revoked by an admin), which reaches the appointments and nothing else. Errors are RFC 9457 problem details
(``application/problem+json``) naming each field at fault. The OpenAPI document is ``openapi.json`` here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets

from flask import Blueprint, Response, abort, current_app, g, request, url_for
from sqlalchemy import select

from .. import audit, clock
from ..extensions import csrf, db, limiter
from ..models import utcnow
from . import services
from ..questionnaire.forms import clean_text
from .booking import check_booking, valid_external_id
from .models import ApiToken, Appointment
from .openapi import document as openapi_document

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
          409: "Conflict", 413: "Content too large", 415: "Unsupported media type", 422: "Unprocessable content",
          429: "Too many requests", 500: "Internal server error", 503: "Service unavailable"}
# What a booking system may know of the screening: whether it has been sent, never its outcome.
API_STATUS = {"cancelled": "cancelled", "no_email": "not_invited", "not_delivered": "not_delivered",
              "invited": "invited", "locked": "locked", "opened": "opened", "in_progress": "in_progress",
              "screened": "screened", "needs_practitioner": "screened", "arrived": "screened",
              "signed_off": "screened"}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def problem(status: int, detail: str = "", errors: dict[str, str] | None = None) -> Response:
    """Return an RFC 9457 problem details response; ``errors`` names each field at fault."""
    body: dict = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = [{"field": k, "detail": v} for k, v in errors.items()]
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="appointments"'
    return response


def create_token(session, name: str, actor_id: int | None = None) -> str:
    """Create an integration's token; return it (shown once: only its hash is stored)."""
    token = "scr_" + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=_hash(token)))
    audit.record(session, "api_token_created", actor_id=actor_id, detail=f"api token {name}", commit=False)
    session.commit()
    return token


def revoke_token(session, name: str, actor_id: int | None = None) -> bool:
    """Revoke an integration's token; False when there is no live token of that name."""
    token = session.scalar(select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None)))
    if token is None:
        return False
    token.revoked_at = utcnow()
    audit.record(session, "api_token_revoked", actor_id=actor_id, detail=f"api token {name}", commit=False)
    session.commit()
    return True


def _token_key() -> str:
    return "api:" + (g.get("api_token_name") or request.remote_addr or "-")


@bp.before_request
def authenticate():
    """Every API request but the OpenAPI document carries a live bearer token."""
    if request.endpoint == "api.openapi":
        return None
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return problem(401, "Send the integration's token as 'Authorization: Bearer <token>'")
    row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(token.strip())))
    if row is None or row.revoked_at is not None:
        return problem(401, "This token is not valid, or has been revoked")
    g.api_token_name = row.name
    if row.last_used_at is None or utcnow() - _aware(row.last_used_at) > dt.timedelta(minutes=1):
        row.last_used_at = utcnow()
        db.session.commit()
    return None


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _body() -> tuple[dict | None, Response | None]:
    if request.mimetype != "application/json":
        return None, problem(415, "Send the appointment as JSON (Content-Type: application/json)")
    try:
        data = json.loads(request.get_data(cache=False) or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, problem(400, "The body is not valid JSON, or is nested too deeply")
    if not isinstance(data, dict):
        return None, problem(400, "The body must be a JSON object")
    return data, None


def represent(a: Appointment) -> dict:
    """Return an appointment as the API shows it: the booking and where its screening stands."""
    rows = services.day(db.session, a.appointment_date, uid=a.uid)
    return {"external_id": a.external_id, "name": a.client_name, "date_of_birth": a.client_dob,
            "email": a.client_email, "phone": a.client_phone, "date": a.appointment_date.isoformat(),
            "time": a.appointment_time.strftime("%H:%M"), "treatment": a.treatment_variant, "areas": a.areas,
            "status": API_STATUS[rows[0].status] if rows else "invited"}


def _json(data: dict, status: int = 200, location: str | None = None) -> Response:
    response = Response(json.dumps(data), status=status, mimetype="application/json")
    if location:
        response.headers["Location"] = location
    response.headers["Cache-Control"] = "no-store"
    return response


def _today() -> dt.date:
    return clock.today()  # the clinic's today (SCREENING_TIME_ZONE)


@bp.post("/appointments")
@limiter.limit(lambda: current_app.config["API_LIMIT"], key_func=_token_key)
def create():
    """Create an appointment (and send its invitation); the same create again answers 200 with it."""
    data, error = _body()
    if error:
        return error
    booking, errors = check_booking(data, today=_today(), practitioners=services.practitioners(db.session))
    external_id = data.get("external_id")
    if "external_id" not in errors and not (isinstance(external_id, str) and clean_text(external_id)):
        errors["external_id"] = "external_id is required: the booking system's own id for this appointment"
    if errors:
        return problem(422, "The appointment is not valid", errors)
    try:
        appointment, created = services.book(db.session, booking, source=f"api:{g.api_token_name}")
    except services.BookingConflict:
        return problem(409, "An appointment with this external_id exists with other details: use PUT to change it")
    location = url_for(".read", external_id=appointment.external_id)
    return _json(represent(appointment), 201 if created else 200, location)


def _find(external_id: str) -> Appointment:
    """Return the appointment with the booking system's ``external_id``, or answer 404 (a problem)."""
    # Only an id the check could have accepted reaches the database (a NUL would be a PostgreSQL error, a 500).
    appointment = services.by_external_id(db.session, external_id) if valid_external_id(external_id) else None
    if appointment is None:
        abort(404, description="No appointment has this external_id")
    return appointment


@bp.get("/appointments/<external_id>")
@limiter.limit(lambda: current_app.config["API_LIMIT"], key_func=_token_key)
def read(external_id: str):
    """Return an appointment by the booking system's id."""
    appointment = _find(external_id)
    return _json(represent(appointment))


@bp.put("/appointments/<external_id>")
@limiter.limit(lambda: current_app.config["API_LIMIT"], key_func=_token_key)
def update(external_id: str):
    """Replace an appointment's booking (every field is sent, as for a create)."""
    appointment = _find(external_id)
    data, error = _body()
    if error:
        return error
    if data.get("external_id", external_id) != external_id:
        return problem(422, "The appointment is not valid", {"external_id": "external_id cannot be changed"})
    booking, errors = check_booking({**data, "external_id": external_id}, today=_today(),
                                    practitioners=services.practitioners(db.session))
    if errors:
        return problem(422, "The appointment is not valid", errors)
    if appointment.cancelled_at is not None:
        return problem(409, "This appointment is cancelled: create a new one with a new external_id")
    services.change(db.session, appointment, booking, source=f"api:{g.api_token_name}")
    return _json(represent(appointment))


@bp.delete("/appointments/<external_id>")
@limiter.limit(lambda: current_app.config["API_LIMIT"], key_func=_token_key)
def cancel(external_id: str):
    """Cancel an appointment (again: nothing changes); its links stop working."""
    appointment = _find(external_id)
    services.cancel(db.session, appointment)
    return Response(status=204)


@bp.get("/openapi.json")
def openapi():
    """Serve the OpenAPI document of this API."""
    return _json(openapi_document(), 200)
