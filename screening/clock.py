"""The clinic's clock: storage stays UTC; every date and time a person reads is in SCREENING_TIME_ZONE.

Appointment dates and times are the clinic's wall-clock values already (as booked) and are never shifted.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app, has_app_context

UTC = dt.timezone.utc
DEFAULT_ZONE = "UTC"


class UnknownTimeZone(ValueError):
    """A time zone name that is not in the IANA database."""


def load_zone(name: str) -> ZoneInfo:
    """Return the IANA time zone ``name`` (like Europe/London); raise UnknownTimeZone."""
    if not name or len(name) > 64 or name != name.strip() or "\x00" in name:
        raise UnknownTimeZone(name)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UnknownTimeZone(name) from None


def zone() -> dt.tzinfo:
    """Return the clinic's time zone (UTC outside an app)."""
    if has_app_context():
        return current_app.config.get("TIME_ZONE_INFO") or UTC
    return UTC


def now() -> dt.datetime:
    """Return the current moment (UTC, timezone-aware); tests replace this to fix the clock."""
    return dt.datetime.now(UTC)


def aware(moment: dt.datetime) -> dt.datetime:
    """Return ``moment`` with a time zone: a naive value read back from SQLite is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def local(moment: dt.datetime, tz: dt.tzinfo | None = None) -> dt.datetime:
    """Return a stored moment in the clinic's time zone (or ``tz``)."""
    return aware(moment).astimezone(tz or zone())


def today(tz: dt.tzinfo | None = None) -> dt.date:
    """Return the clinic's today: the date on the clinic's wall, not the server's or UTC's."""
    return local(now(), tz).date()


def day_start(day: dt.date, tz: dt.tzinfo | None = None) -> dt.datetime:
    """Return the moment (UTC) the clinic's ``day`` begins (its midnight; 23 or 25 hours apart across a change)."""
    return dt.datetime.combine(day, dt.time(), tzinfo=tz or zone()).astimezone(UTC)


def zone_name(moment: dt.datetime) -> str:
    """Return the short name of a local moment's zone: BST, GMT, UTC, CET; UTC+03:00 where the zone has no letters."""
    moment = aware(moment)
    name = moment.tzname() or ""
    if name.isalpha():
        return name
    offset = moment.utcoffset() or dt.timedelta()
    sign = "-" if offset < dt.timedelta() else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"
