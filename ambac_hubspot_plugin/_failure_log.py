"""Logging for loops that retry: one line when a failure starts or changes, one when it ends.

A background loop retrying every few seconds through a store or HubSpot outage would
otherwise write the same traceback every round and bury everything else in the host's log.
"""

from __future__ import annotations

import logging

__all__ = ["FailureLog"]


class FailureLog:
    """Tells a logger about the state changes of one repeating piece of work.

    Call :meth:`failed` after each failed round and :meth:`succeeded` after each good one. The
    first failure (and a failure of another kind) is one ERROR line without a traceback, the
    recovery one INFO line; repeats go to DEBUG with the traceback, for whoever needs it.
    """

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._log, self._what = logger, what
        self._kind: str | None = None
        self._repeats = 0

    @property
    def failing(self) -> bool:
        """Whether the last round failed."""
        return self._kind is not None

    def failed(self, exc: BaseException, retry_seconds: float) -> None:
        """Record a failed round, logging one line if the work was fine or failed otherwise."""
        kind = type(exc).__name__
        if kind != self._kind:
            self._kind, self._repeats = kind, 0
            self._log.error("%s failed: %s: %s; retrying every %g s (logged again when that "
                            "changes)", self._what, kind, _first_line(exc), retry_seconds)
        else:
            self._repeats += 1
        self._log.debug("%s failed", self._what, exc_info=exc)

    def succeeded(self) -> None:
        """Record a good round, logging one line if the work was failing."""
        if self._kind is not None:
            self._log.info("%s works again (after %s failed rounds)", self._what,
                           self._repeats + 1)
            self._kind, self._repeats = None, 0


def _first_line(exc: BaseException) -> str:
    # Driver errors append the SQL and its parameters on further lines: keep the first.
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else "(no message)"
