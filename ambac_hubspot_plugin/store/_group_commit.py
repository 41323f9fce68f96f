"""Group commit: concurrent webhook deliveries to one store are written in one transaction.

The receiver answers HubSpot only once a delivery is committed. On SQLite the writes are
serialized anyway, so committing deliveries one by one makes each answer wait for every
delivery in front of it; :class:`GroupCommit` lets the caller at the front of the queue write
everything queued at that moment, and pays the commit once per group.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence

import sqlalchemy as sa

__all__ = ["GROUP_EVENTS", "GroupCommit", "Received"]

# A group stops growing at this many events: a flood of big deliveries must not make one
# transaction (and the answers waiting for it) arbitrarily long.
GROUP_EVENTS = 5000


class Received:
    """A verified delivery body to store whole, as the receiver hands it over."""

    __slots__ = ("attempts", "body", "events", "job_kind", "latest_ms", "portal_id", "tenant_id")

    def __init__(self, tenant_id: str, portal_id: str, body: bytes, events: int,
                 latest_ms: int, job_kind: str, attempts: int) -> None:
        self.tenant_id, self.portal_id, self.body = tenant_id, portal_id, body
        self.events, self.latest_ms = events, latest_ms
        self.job_kind, self.attempts = job_kind, attempts


class _Waiter:
    """One caller's item waiting in the group-commit queue, and its outcome."""

    __slots__ = ("error", "finished", "item", "result", "wake")

    def __init__(self, item: Received) -> None:
        self.item = item
        self.wake = threading.Event()  # set when finished, or when it is to lead
        self.finished = False
        self.result: int | None = None
        self.error: BaseException | None = None

    def outcome(self) -> int:
        if self.error is not None:
            raise self.error
        assert self.result is not None  # finished without error means a result was set
        return self.result


class GroupCommit:
    """A writer queue: concurrent deliveries to one store are committed together.

    The caller at the front of the queue leads: it takes every delivery queued at that moment
    (its own first), writes them in one transaction, and after the commit hands each caller its
    result or error; the next caller at the front then leads the next group. There is no
    background thread, so nothing needs stopping and nothing is written on a caller's behalf
    after it gave up. On SQLite the writes are serialized anyway, and the commit, the
    ``BEGIN IMMEDIATE`` and the pool checkout are paid once per group instead of once per
    delivery: the answer waits for one group, not for every delivery in front of it.
    """

    def __init__(self, write: Callable[[Sequence[Received]], list[int]]) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._queue: deque[_Waiter] = deque()

    def submit(self, item: Received) -> int:
        waiter = _Waiter(item)
        with self._lock:
            self._queue.append(waiter)
            leading = self._queue[0] is waiter
        if not leading:
            waiter.wake.wait()
            if waiter.finished:
                return waiter.outcome()
        with self._lock:  # at the front now: nobody else touches the head of the queue
            group = self._take()
        try:
            self._commit(group)
        except BaseException as exc:  # e.g. KeyboardInterrupt: still release every waiter
            for member in group:
                if member.result is None and member.error is None:
                    member.error = exc
            raise
        finally:
            with self._lock:
                for _ in group:
                    self._queue.popleft()
                for member in group:
                    member.finished = True
                    member.wake.set()
                if self._queue:
                    self._queue[0].wake.set()  # the next group's leader
        return waiter.outcome()

    def _take(self) -> list[_Waiter]:
        group: list[_Waiter] = []
        events = 0
        for member in self._queue:
            if group and events + member.item.events > GROUP_EVENTS:
                break
            group.append(member)
            events += member.item.events
        return group

    def _commit(self, group: Sequence[_Waiter]) -> None:
        """Write ``group`` in one transaction; when the database refuses a value, halve it
        until the culprit is alone: that delivery fails alone, and the others still commit.
        Any other failure (the store locked or down) fails the whole group at once, so the
        deliveries queued behind it get their 503 after one wait, not one per halving.
        """
        try:
            results = self._write([member.item for member in group])
        except Exception as exc:
            if len(group) == 1 or not isinstance(exc, sa.exc.DataError | sa.exc.IntegrityError):
                for member in group:
                    member.error = exc
                return
            middle = len(group) // 2
            self._commit(group[:middle])
            self._commit(group[middle:])
            return
        for member, result in zip(group, results, strict=True):
            member.result = result
