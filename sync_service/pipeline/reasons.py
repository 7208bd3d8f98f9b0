"""Quarantine reasons as one short line (SPEC §5: "quarantined with a one-line reason").

A reason is read in ``export quarantine`` tables, on the dashboard and in logs, one entry per line. The
``str()`` of a SQLAlchemy error is several lines: the driver's message, then the SQL, its bound parameters
(message data: subjects, names, ids) and a link. Only the driver's message says what went wrong, so
``error_reason`` keeps the error's type and the first line of that message and nothing of the statement.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

MAX_REASON_CHARS = 2000  # what any reason is cut to (several problems of one item are joined in one)
MAX_ERROR_CHARS = 500  # an unexpected error's message: enough to say what failed
_CONTROL = {i: " " for i in (*range(0x20), 0x7F)}  # line breaks, tabs, NUL, ESC …: a reason is one plain line


def one_line(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """``text`` on one line (control characters and runs of blanks made one space), cut at ``limit``."""
    flat = " ".join(text.translate(_CONTROL).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def error_reason(error: BaseException) -> str:
    """``internal error: <type>: <message>`` for an unexpected error; for a database error the driver's
    message (``error.orig``, first line), without the SQL and its parameters."""
    cause: object = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    lines = [line for line in str(cause).splitlines() if line.strip()]
    message = lines[0] if lines else ""
    return one_line(f"internal error: {type(error).__name__}: {message}".rstrip(": "), MAX_ERROR_CHARS)
