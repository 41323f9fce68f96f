"""The one check every filter and id from a route or the CLI passes before it reaches a store.

A query value the database cannot hold is the caller's mistake, not a server error: PostgreSQL
refuses text with NUL characters, neither database driver can encode an unpaired surrogate
(what undecodable bytes in a command-line argument become), and an integer beyond 64 bits
overflows SQLite. Each such value is refused as a :class:`ConfigError` naming the parameter,
which routes answer with 400 and the CLI with exit code 2.
"""

from __future__ import annotations

from .errors import ConfigError

__all__ = ["MAX_ID", "MAX_TEXT", "check_filters", "filter_problems"]

MAX_TEXT = 200
"""The longest text filter: far beyond any record key, job kind or log kind."""
MAX_ID = 2**63 - 1
"""The largest id or cursor: a signed 64-bit integer, what both databases hold."""


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "must not contain a NUL character (\\x00)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid text (it holds bytes that are not UTF-8)"
    if len(value) > MAX_TEXT:
        return f"must be at most {MAX_TEXT} characters long"
    return None


def filter_problems(**values: str | int | None) -> list[tuple[str, str]]:
    """``(name, what is wrong)`` for each value a store query cannot take; None is no filter."""
    problems: list[tuple[str, str]] = []
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise TypeError(f"filter {name} must be str or int, not {type(value).__name__}")
        if isinstance(value, int):
            if not 0 <= value <= MAX_ID:
                problems.append((name, f"must be a whole number from 0 to {MAX_ID}"))
        else:
            why = _text_problem(value)
            if why is not None:
                problems.append((name, why))
    return problems


def check_filters(what: str, **values: str | int | None) -> None:
    """Raise one :class:`ConfigError` naming every value :func:`filter_problems` refuses."""
    problems = filter_problems(**values)
    if problems:
        raise ConfigError.from_problems(problems, what=what)
