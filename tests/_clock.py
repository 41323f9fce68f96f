"""The one manual clock the tests inject (the code under test takes a clock callable)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class ManualClock:
    """Tz-aware UTC time that moves only when a test moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | float = 0.0, /, **parts: float) -> datetime:
        """Move forward by a timedelta, a number of seconds, or timedelta keyword parts."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        self.now += step + timedelta(**parts)
        return self.now

    def tick(self, seconds: float = 60) -> datetime:
        """Move forward a minute (or ``seconds``)."""
        return self.advance(seconds)
