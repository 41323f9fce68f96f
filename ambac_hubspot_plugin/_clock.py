"""The default clock of every part of the package: now, tz-aware UTC.

Everything that reads the time takes a ``clock`` parameter defaulting to :func:`utc_now`, so
tests move time by hand instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "utc_now"]

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, tz-aware UTC."""
    return datetime.now(UTC)
