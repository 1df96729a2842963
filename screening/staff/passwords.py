"""The rules every staff password must meet, wherever it is set: the web forms and the command line.

NIST SP 800-63B (section 3.1.1.2, memorized secrets) asks for a minimum length of at least 8, a maximum of at
least 64, no composition rules ("a digit and a capital"), no periodic change, and a check against passwords
known to be weak: breach corpuses, dictionary words, repetitive or sequential characters, words of the context.

- **At least 12 characters** (``MIN_LENGTH``): 800-63B's 8 is its floor; staff accounts read health records all
  day, so we ask for the 12 that the command line has always asked for. A passphrase of three or four words
  passes easily; spaces and every Unicode character count.
- **At most 200** (``MAX_LENGTH``): far above 800-63B's 64, and exactly what the sign-in form accepts, so that no
  account is given a password it could never type in to sign in.
- **Not on the shipped list** of 20,000 common and breached passwords (``screening/data/common-passwords.txt.gz``,
  from Django; see ``screening/data/README.md``), compared without regard to case or surrounding spaces.
- **Not one character repeated, not a run of consecutive characters** ("aaaaaaaaaaaa", "123456789012"), and
  **not the account's own email address** or the part before its ``@``.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

MIN_LENGTH = 12
MAX_LENGTH = 200  # the sign-in form's limit too: a longer password could never be typed in to sign in
COMMON_PASSWORDS = Path(__file__).resolve().parent.parent / "data" / "common-passwords.txt.gz"
ON_THE_LIST = "This password is on a list of common or leaked passwords; choose another"


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """Return the shipped list of common and breached passwords, lower case (read once per process)."""
    with gzip.open(COMMON_PASSWORDS, "rt", encoding="utf-8") as lines:
        return frozenset(line.strip() for line in lines if line.strip())


def _sequential(password: str) -> bool:
    """Whether ``password`` is one character repeated or one run (abcdef..., 1234567890123..., and backwards)."""
    modulus = 10 if password.isascii() and password.isdigit() else 0x110000  # digits go round: ...8901...
    steps = {(ord(b) - ord(a)) % modulus for a, b in pairwise(password)}
    return len(steps) == 1 and steps <= {0, 1, modulus - 1}


def problem(password: str, email: str = "") -> str | None:
    """Return why ``password`` may not be used (a sentence for the person choosing it), or None if it may."""
    if len(password) < MIN_LENGTH:
        return f"The password must have at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"The password must have at most {MAX_LENGTH} characters (the sign-in form's limit)"
    folded = password.strip().lower()
    if folded in common_passwords():
        return ON_THE_LIST
    if _sequential(password.lower()):
        return "The password must not be one character repeated or a run like 123456789012; choose another"
    email = email.strip().lower()
    if email and folded in {email, email.partition("@")[0]}:
        return "The password must not be your email address; choose another"
    return None
