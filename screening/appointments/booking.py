"""What a booking must hold, checked in one place for the desk's form, the CSV import and the JSON API.

``check_booking`` takes the raw fields (strings, and a list for the areas) and returns a ``Booking`` or, for
every field at fault, a message that names it. No database here: the caller passes the practitioners.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import questions as qd
from ..questionnaire.forms import _EMAIL, _PHONE, clean_text  # the questionnaire's own checks of the same fields

FIELDS = ("external_id", "name", "date_of_birth", "email", "phone", "date", "time", "treatment", "areas",
          "practitioner_email")
REQUIRED = ("name", "date_of_birth", "date", "time", "treatment", "areas")
TREATMENTS = {c.code: c.label for c in qd.BY_ID["treatment_variant"].choices if c.code != qd.VARIANT_UNKNOWN}
AREAS = {c.code: c.label for c in qd.TREATMENT_AREA_CHOICES}
LIMITS = {"external_id": 100, "name": 120, "email": 254, "phone": 30, "practitioner_email": 254, "date_of_birth": 10,
          "date": 10, "time": 5, "treatment": 16}
_EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_:-][A-Za-z0-9._:-]*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^\d{1,2}:\d{2}$")


@dataclass(frozen=True)
class Booking:
    """A checked booking: what an appointment is made from."""

    name: str
    date_of_birth: dt.date
    email: str
    phone: str
    date: dt.date
    time: dt.time
    treatment: str
    areas: tuple[str, ...]
    practitioner_id: int | None = None
    external_id: str | None = None


def valid_external_id(text: str) -> bool:
    """Whether ``text`` is a booking system's id this check accepts (letters, digits and . _ : -; at most 100)."""
    return len(text) <= LIMITS["external_id"] and bool(_EXTERNAL_ID.match(text))


def split_areas(value: Any) -> list[str]:
    """Return the area codes of a list, or of text separated by semicolons, commas or spaces (a CSV cell)."""
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part for part in re.split(r"[;,\s]+", str(value or "").strip()) if part]


def _date(text: str, what: str) -> tuple[dt.date | None, str | None]:
    if not _DATE.match(text):
        return None, f"{what} must be a date written as YYYY-MM-DD, like 2027-01-15"
    try:
        return dt.date.fromisoformat(text), None
    except ValueError:
        return None, f"{what} must be a real date"


def check_booking(raw: Mapping[str, Any], *, today: dt.date, practitioners: Mapping[str, int],
                  unknown: bool = True) -> tuple[Booking | None, dict[str, str]]:
    """Return (the booking, {}) or (None, {field: message}) for every field at fault.

    ``practitioners`` maps each active practitioner's email (lower case) to their id. With ``unknown``, a
    field this function does not know is an error too (the API's and the CSV's typos must not pass unseen).
    """
    errors: dict[str, str] = {}
    if unknown:
        for key in raw:
            if key not in FIELDS:
                errors[key] = f"‘{key}’ is not a field of an appointment (the fields are: {', '.join(FIELDS)})"
    text: dict[str, str] = {}
    for key in FIELDS:
        value = raw.get(key)
        if key == "areas":
            continue
        if value is not None and not isinstance(value, str):
            errors[key] = f"{key} must be text"
            continue
        text[key] = clean_text(value)
        if len(text[key]) > LIMITS[key]:
            errors[key] = f"{key} must be {LIMITS[key]} characters or fewer"
    for key in REQUIRED:
        if key != "areas" and not text.get(key) and key not in errors:
            errors[key] = {"name": "Enter the client's full name",
                           "date_of_birth": "Enter the client's date of birth",
                           "date": "Enter the date of the appointment",
                           "time": "Enter the time of the appointment",
                           "treatment": "Select the treatment booked"}[key]
    dob = appointment_date = start = None
    if text.get("date_of_birth") and "date_of_birth" not in errors:
        dob, problem = _date(text["date_of_birth"], "Date of birth")
        if problem:
            errors["date_of_birth"] = problem
        elif dob >= today:
            errors["date_of_birth"] = "Date of birth must be in the past"
        elif dob.year < today.year - 120:
            errors["date_of_birth"] = "Date of birth must be within the last 120 years"
    if text.get("date") and "date" not in errors:
        appointment_date, problem = _date(text["date"], "Appointment date")
        if problem:
            errors["date"] = problem
        elif appointment_date < today:
            errors["date"] = "Appointment date must be today or in the future"
        elif appointment_date > today + dt.timedelta(days=2 * 366):
            errors["date"] = "Appointment date must be within the next two years"
    if text.get("time") and "time" not in errors:
        try:
            if not _TIME.match(text["time"]):
                raise ValueError
            hour, minute = (int(p) for p in text["time"].split(":"))
            start = dt.time(hour, minute)
        except ValueError:
            errors["time"] = "Appointment time must be a real time written as HH:MM, like 14:30"
    if text.get("email") and "email" not in errors and not _EMAIL.match(text["email"]):
        errors["email"] = "Email address must be in the correct format, like name@example.com"
    if text.get("phone") and "phone" not in errors and not _PHONE.match(text["phone"]):
        errors["phone"] = "Phone number must be like 07700 900 982 or +44 7700 900 982"
    if text.get("treatment") and "treatment" not in errors and text["treatment"] not in TREATMENTS:
        errors["treatment"] = f"Treatment must be one of: {', '.join(TREATMENTS)}"
    areas: list[str] = []
    raw_areas = raw.get("areas")
    if raw_areas is not None and not isinstance(raw_areas, (str, list, tuple)):
        errors["areas"] = "areas must be a list of area codes"
    else:
        areas = list(dict.fromkeys(split_areas(raw_areas)))
        wrong = [a for a in areas if a not in AREAS]
        if not areas:
            errors["areas"] = "Select at least one area to be treated"
        elif wrong:
            errors["areas"] = (f"Unknown area {', '.join(repr(w) for w in wrong)}: areas must be among "
                               f"{', '.join(AREAS)}")
    practitioner_id = None
    if text.get("practitioner_email") and "practitioner_email" not in errors:
        practitioner_id = practitioners.get(text["practitioner_email"].lower())
        if practitioner_id is None:
            errors["practitioner_email"] = "Practitioner must be the email address of an active practitioner"
    if text.get("external_id") and "external_id" not in errors and not _EXTERNAL_ID.match(text["external_id"]):
        errors["external_id"] = "external_id may hold only letters, digits and . _ : - (not first: .)"
    if errors:
        return None, errors
    return Booking(name=text["name"], date_of_birth=dob, email=text.get("email", ""), phone=text.get("phone", ""),
                   date=appointment_date, time=start, treatment=text["treatment"], areas=tuple(areas),
                   practitioner_id=practitioner_id, external_id=text.get("external_id") or None), {}
