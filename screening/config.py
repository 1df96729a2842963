"""Settings read from SCREENING_* environment variables; no secret has a fallback."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def from_environ(environ: dict[str, str] | None = None) -> dict:
    """Return the app settings found in the environment (SCREENING_ prefix)."""
    env = os.environ if environ is None else environ
    out: dict = {"RULES_PATH": env.get("SCREENING_RULES_PATH", str(ROOT / "rules.yaml"))}
    if env.get("SCREENING_SECRET_KEY"):
        out["SECRET_KEY"] = env["SCREENING_SECRET_KEY"]
    return out
