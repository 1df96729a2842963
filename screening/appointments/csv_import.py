"""Import appointments from a booking system's CSV file: all or nothing, every problem by line and column.

The first line names the columns (any order; ``name``, ``date_of_birth``, ``date``, ``time``, ``treatment`` and
``areas`` are required, areas separated by semicolons). A row whose ``external_id`` is already booked with
the same details is left as it is, so the same export can be imported twice.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from .. import audit
from . import services
from .booking import FIELDS, REQUIRED, check_booking

COLUMNS = FIELDS
MAX_BYTES = 2 * 1024 * 1024
MAX_ROWS = 5000


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file: its line (1 is the header; 0 the whole file), column and message."""

    line: int
    column: str
    message: str


@dataclass
class Result:
    """What an import did: appointments created and left unchanged, or the problems (then nothing was imported)."""

    created: int = 0
    unchanged: int = 0
    problems: list[Problem] = field(default_factory=list)


def read_rows(data: bytes) -> tuple[list[tuple[int, dict]], list[Problem]]:
    """Return the file's rows with their line numbers, or the problems that stop it being read at all."""
    if not data.strip():
        return [], [Problem(0, "", "The file is empty: choose the CSV file exported from your booking system")]
    if len(data) > MAX_BYTES:
        size = MAX_BYTES // (1024 * 1024)
        return [], [Problem(0, "", f"The file is larger than {size} MB: split it into smaller files")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], [Problem(0, "", "The file is not UTF-8 text: export it as CSV (UTF-8)")]
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="\0extra")
    header = reader.fieldnames or []
    problems = []
    names = [h.strip() for h in header]
    for name in names:
        if name not in FIELDS:
            problems.append(Problem(1, name, f"‘{name}’ is not a column this import knows (the columns are: "
                                             f"{', '.join(FIELDS)})"))
    for name in REQUIRED:
        if name not in names:
            problems.append(Problem(1, name, f"The column ‘{name}’ is missing"))
    if len(set(names)) != len(names):
        problems.append(Problem(1, "", "A column is named twice"))
    if problems:
        return [], problems
    rows = []
    try:
        for row in reader:
            line = reader.line_num
            if "\0extra" in row:
                problems.append(Problem(line, "", "This line has more values than the header has columns"))
                continue
            clean = {k.strip(): (v or "") for k, v in row.items()}
            if not any(v.strip() for v in clean.values()):
                continue  # a blank line
            rows.append((line, clean))
            if len(rows) > MAX_ROWS:
                return [], [Problem(0, "", f"The file has more than {MAX_ROWS} appointments: split it")]
    except csv.Error as exc:
        problems.append(Problem(reader.line_num, "", f"The file cannot be read as CSV ({exc})"))
    return rows, problems


def import_bytes(session: Session, data: bytes, *, today: dt.date, source: str, actor_id: int | None) -> Result:
    """Check every row, then book them all in one transaction, or none if any row is at fault."""
    rows, problems = read_rows(data)
    if problems:
        return Result(problems=problems)
    practitioners = services.practitioners(session)
    bookings = []
    seen: dict[str, int] = {}
    for line, row in rows:
        booking, errors = check_booking({k: v for k, v in row.items() if v.strip() or k in REQUIRED}, today=today,
                                        practitioners=practitioners)
        problems.extend(Problem(line, column, message) for column, message in errors.items())
        if booking is None:
            continue
        if booking.external_id:
            if booking.external_id in seen:
                first = seen[booking.external_id]
                problems.append(Problem(line, "external_id", f"The same external_id is on line {first}"))
                continue
            seen[booking.external_id] = line
            existing = services.by_external_id(session, booking.external_id)
            if existing is not None:
                if existing.cancelled_at is None and services.same_booking(existing, booking):
                    bookings.append((line, None))
                    continue
                problems.append(Problem(line, "external_id", "This external_id is booked already with other details: "
                                                              "change it in the staff area or through the API"))
                continue
        bookings.append((line, booking))
    if not rows and not problems:
        problems.append(Problem(0, "", "The file has a header but no appointments"))
    if problems:
        return Result(problems=sorted(problems, key=lambda p: (p.line, FIELDS.index(p.column)
                                                                 if p.column in FIELDS else 99)))
    result = Result()
    for _line, booking in bookings:
        if booking is None:
            result.unchanged += 1
            continue
        services.add(session, booking, source=source, actor_id=actor_id)
        result.created += 1
    audit.record(session, "appointments_imported", actor_id=actor_id,
                 detail=f"{result.created} created, {result.unchanged} unchanged", commit=False)
    session.commit()
    return result
