"""Dates as the clinical specification counts them: calendar months, durations, answers given as dates."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from .. import questions as qd


def add_months(day: dt.date, months: int) -> dt.date:
    """Add calendar months; a day the target month lacks becomes the 1st of the next month."""
    total = day.year * 12 + (day.month - 1) + months
    year, month = divmod(total, 12)
    month += 1
    if day.day <= calendar.monthrange(year, month)[1]:
        return dt.date(year, month, day.day)
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return dt.date(year, month, 1)


@dataclass(frozen=True)
class Duration:
    """A length of time in one unit: days, weeks, months or years."""

    amount: int
    unit: str

    def after(self, day: dt.date) -> dt.date:
        """Return the first date on which this duration has passed since ``day``."""
        if self.unit == "days":
            return day + dt.timedelta(days=self.amount)
        if self.unit == "weeks":
            return day + dt.timedelta(weeks=self.amount)
        if self.unit == "months":
            return add_months(day, self.amount)
        return add_months(day, 12 * self.amount)

    def max_days(self) -> int:
        """Return the longest this duration can be, in days."""
        per = {"days": 1, "weeks": 7, "months": 31, "years": 366}[self.unit]
        return self.amount * per

    def min_days(self) -> int:
        """Return the shortest this duration can be, in days."""
        per = {"days": 1, "weeks": 7, "months": 28, "years": 365}[self.unit]
        return self.amount * per

    def __str__(self) -> str:
        unit = self.unit[:-1] if self.amount == 1 else self.unit
        return f"{self.amount} {unit}"


_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


_ISO_MONTH = re.compile(r"^\d{4}-\d{2}$")


def parse_answer_date(value: Any, question: qd.Question) -> dt.date | str:
    """Return a date answer as a date (or ``unknown``); raise ValueError with a plain message."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a date written YYYY-MM-DD")
    if value == qd.UNKNOWN:
        if question.unknown_allowed:
            return qd.UNKNOWN
        raise ValueError("cannot be 'unknown'")
    if _ISO_DAY.match(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"'{value}' is not a real date") from None
    if _ISO_MONTH.match(value) and question.month_allowed:
        year, month = int(value[:4]), int(value[5:])
        if not 1 <= month <= 12 or year < 1:
            raise ValueError(f"'{value}' is not a real month")
        # Only the month is known: take its last day (the conservative choice).
        return dt.date(year, month, calendar.monthrange(year, month)[1])
    form = "YYYY-MM-DD or YYYY-MM" if question.month_allowed else "YYYY-MM-DD"
    raise ValueError(f"must be a date written {form}")


def _span(value: Any, q: qd.Question) -> tuple[dt.date, dt.date] | None:
    """Return the first and last day a date answer can mean (a month: its first and last day)."""
    if isinstance(value, str) and _ISO_MONTH.match(value):
        last = parse_answer_date(value, q)
        return last.replace(day=1), last
    if isinstance(value, dt.date):
        return value, value
    if isinstance(value, str) and _ISO_DAY.match(value):
        day = dt.date.fromisoformat(value)
        return day, day
    return None
