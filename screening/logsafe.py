"""Logs never carry an error's message: the type and where it happened only.

A database error's text quotes the SQL statement (and, unless hidden, its parameters: answers, names); other
errors' texts can quote values too (a ``KeyError`` names the key, a ``ValueError`` repeats what it was given).
So every log record of the app that carries an exception (``logger.exception``, Flask's "Exception on ..."
for an unhandled error, a task's failures, Huey's own) keeps its traceback's frames, which are source lines, and
each exception's type, and drops every exception's message.
"""

from __future__ import annotations

import logging
import re
import traceback


def scrubbed_traceback(exc: BaseException) -> str:
    """Return ``exc``'s traceback (and its causes') with the type of each exception and none of their messages."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    chain: list[BaseException] = []
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    for n, item in enumerate(reversed(chain)):
        if n:
            parts.append("\nThe above exception led to the following one:\n\n")
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(item.__traceback__))
        kind = type(item)
        parts.append(f"{kind.__module__}.{kind.__qualname__} (message withheld: it may quote data)\n")
    return "".join(parts).rstrip("\n")


class WithholdMessages(logging.Filter):
    """Replace a record's exception by its scrubbed traceback (see the module's docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrubbed_traceback(record.exc_info[1])
            record.exc_info = None
        return True


_FILTER = WithholdMessages()
INVITATION_LINK = re.compile(r"/i/[A-Za-z0-9_-]+")
STAFF_LINK = re.compile(r"/staff/link/[A-Za-z0-9_%-]+")  # a staff invitation or password-reset link


def _hide(text: str) -> str:
    return STAFF_LINK.sub("/staff/link/[token]", INVITATION_LINK.sub("/i/[token]", text))


class HideInvitationTokens(logging.Filter):
    """Replace a link's token (a client's invitation, a staff invitation or password reset) in a logged request line
    (the development server logs every path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and ("/i/" in record.msg or "/staff/link/" in record.msg):
            record.msg = _hide(record.msg)
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(_hide(a) if isinstance(a, str) else a for a in record.args)
        return True


_TOKENS = HideInvitationTokens()


def install(app) -> None:
    """Scrub the app's logger and every ``screening.*`` module logger (a filter is per logger, not inherited)."""
    names = {app.logger.name, "screening", "huey", "huey.consumer"} | {
        name for name in logging.root.manager.loggerDict if name.startswith(("screening.", "huey."))}
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    werkzeug = logging.getLogger("werkzeug")  # `flask run`'s request lines
    if _TOKENS not in werkzeug.filters:
        werkzeug.addFilter(_TOKENS)
