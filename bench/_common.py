"""Shared by the benchmark scripts: the repository on sys.path, a typical client, percentiles, an app.

Not a benchmark itself; ``bench/<script>.py`` imports it (the script's folder is on sys.path).
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def typical_answers() -> dict:
    """A complete answer set that raises a few flags of different severities.

    Isotretinoin stopped 20 days ago (defer), a history of cold sores (review), a permanent filler
    in the cheeks (review: in the treatment area), and a hyaluronic filler in the cheeks 20 days ago;
    the appointment is 30 days from today. (That filler raises no flag: the 14-day rule for an
    injectable in the area has ended by an appointment 30 days ahead; it still fills the PDF.)
    """
    from tests.answers import clear_answers

    today = dt.date.today()
    future = (today + dt.timedelta(days=30)).isoformat()
    recent = (today - dt.timedelta(days=20)).isoformat()
    return clear_answers(
        appointment_date=future,
        isotretinoin_last_12m="yes",
        isotretinoin_current="no",
        isotretinoin_last_dose_date=recent,
        cold_sore_history="yes",
        cold_sore_frequency="yearly",
        permanent_filler="yes",
        permanent_filler_location=["cheeks"],
        injectables_12m="yes",
        injectables=[{"type": "ha_filler", "date": recent, "location": ["cheeks"]}],
    )


def percentile(sorted_values: list, p: float) -> float:
    """The ``p`` percentile (nearest rank) of already sorted values."""
    return sorted_values[min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))]


def make_app(database_path: Path, **extra):
    """Return an app on a fresh SQLite file with the schema created (PDFs rendered in the foreground)."""
    from screening import create_app
    from screening.extensions import db

    settings = {"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database_path}",
                "SECRET_KEY": "bench-secret", "PDF_BACKGROUND": False, **extra}
    app = create_app(settings)
    with app.app_context():
        db.create_all()
    return app
