"""The default clock of every part of the package: now, tz-aware UTC.

Everything that reads the time takes a ``clock`` parameter defaulting to :func:`utc_now`, so
tests move time by hand instead of sleeping.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["Clock", "due_on_schedule", "utc_now"]

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, tz-aware UTC."""
    return datetime.now(UTC)


def due_on_schedule(last: datetime | None, now: datetime, interval: timedelta, key: str) -> bool:
    """Whether a task run every ``interval`` is due at ``now``, having last run at ``last``.

    The periods are fixed, not counted from the last run: the task is due once per period, at
    the first check inside it. Counted from the last run, every run would start late by the
    time between checks plus the queue's wait, and the lateness would add up (a run every
    900 s checked 30 s to 10 min apart ran 80 times a day instead of 96). Each ``key`` (a tenant)
    has its own phase within the period, so that many tenants' runs are spread over it
    instead of all falling on the same moment.
    """
    if last is None:
        return True
    seconds = interval.total_seconds()
    phase = zlib.crc32(key.encode()) % max(1, int(seconds))
    return (now.timestamp() - phase) // seconds > (last.timestamp() - phase) // seconds
