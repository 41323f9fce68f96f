"""Runs queued jobs: synchronously for the host's scheduler, or in a background thread."""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime, timedelta

import attrs

from ._ports import Job, JobQueue, JobState, LeaseLostError, utc_now
from ._queue import DEFAULT_LEASE, check_lease

__all__ = ["DrainCounts", "LeaseKeeper", "QueueRunner", "default_worker_id", "keep_leases"]

_log = logging.getLogger(__name__)

Handler = Callable[[Job], None]


def default_worker_id() -> str:
    """host:pid:random, unique per runner so a restarted process never inherits leases."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@attrs.frozen
class DrainCounts:
    """What one :meth:`QueueRunner.drain` did."""

    claimed: int = 0
    succeeded: int = 0
    retried: int = 0
    dead: int = 0
    lost: int = 0
    """Jobs whose lease another worker took over before this one reported back."""


class LeaseKeeper:
    """Renews the leases of jobs every quarter lease while their handler runs (a heartbeat).

    This is what lets a handler run longer than the lease: as long as the process lives the
    leases stay fresh; when the process dies, they run out within one lease and the jobs come
    back. A quarter lease leaves room for two failed renewals (a database hiccup) before a live
    worker's lease could run out. A job whose lease another worker took over is dropped from
    the set and named in :attr:`lost`.
    """

    def __init__(self, queue: JobQueue, job_ids: Collection[int], worker_id: str,
                 lease: timedelta) -> None:
        check_lease(lease)
        self._queue, self._ids, self._worker, self._lease = queue, set(job_ids), worker_id, lease
        #: Jobs found leased to another worker: this one must not write their results.
        self.lost: set[int] = set()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"hubspot-lease-{min(self._ids, default=0)}")

    def _run(self) -> None:
        interval = max(self._lease.total_seconds() / 4, 0.05)
        while self._ids and not self._done.wait(interval):
            try:
                gone = self._queue.extend_leases(self._ids, self._worker, self._lease)
            except Exception as exc:  # a database hiccup: keep trying until the jobs end
                _log.warning("renewing the leases of jobs %s failed (they run out %s after the "
                             "last renewal): %s", sorted(self._ids)[:5], self._lease, exc)
                continue
            if gone:
                _log.warning("jobs %s: lease lost to another worker (this one stalled longer "
                             "than the lease %s); it runs them again",
                             sorted(gone)[:5], self._lease)
                self._ids -= gone
                self.lost |= gone

    def __enter__(self) -> LeaseKeeper:
        if self._ids:
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()


def keep_leases(queue: JobQueue, jobs: Iterable[Job], worker_id: str,
                lease: timedelta = DEFAULT_LEASE) -> LeaseKeeper:
    """Keep the leases of jobs a handler claimed itself (besides the runner's job) fresh
    while the ``with`` block runs, as the runner does for the job it hands over.

    Claim them with the same ``lease``. The keeper's :attr:`~LeaseKeeper.lost` names those
    another worker took over meanwhile: skip their work if it has not started yet.
    """
    return LeaseKeeper(queue, [job.id for job in jobs], worker_id, lease)


class QueueRunner:
    """Claims jobs from a queue and runs the handler registered for each job's kind.

    A handler that raises fails the job with the exception's type and message (never its
    traceback, which could show local values); the queue retries it with backoff or
    dead-letters it. Handlers may run longer than ``lease``: the runner extends the lease
    in a helper thread while the handler runs. Handlers must be idempotent, because a job
    whose worker dies is run again (at-least-once delivery).
    """

    def __init__(self, queue: JobQueue, handlers: Mapping[str, Handler], *,
                 worker_id: str | None = None, lease: timedelta = DEFAULT_LEASE,
                 poll_interval: timedelta = timedelta(seconds=5),
                 clock: Callable[[], datetime] = utc_now,
                 kinds: Collection[str] | None = None,
                 on_failed: Callable[[Job], None] | None = None) -> None:
        """:param kinds: claim only these kinds; None claims every kind, and a kind without a
        handler then fails with a clear reason (so a typo does not sit in the queue unseen).
        :param on_failed: called with each job this runner failed, as the queue now holds it
            (retried later, or dead); what it raises is logged.
        """
        self._queue = queue
        self._handlers = dict(handlers)
        check_lease(lease)
        self.worker_id = worker_id or default_worker_id()
        self._lease = lease
        self._poll = poll_interval
        self._clock = clock
        self._kinds = None if kinds is None else tuple(kinds)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._claims = itertools.count(1)
        self._on_failed = on_failed

    def _owner(self) -> str:
        """The lease owner of one claim: this runner's id and the claim's number. Two attempts
        at one job never share an owner, even in one process (the background thread and the
        host's tick drain with one runner): an attempt that lost its lease (stalled past it,
        the job claimed again) can then neither renew, complete nor fail the new attempt's."""
        return f"{self.worker_id}#{next(self._claims)}"

    def _run_one(self, job: Job) -> str:
        owner = job.lease_owner or self.worker_id
        handler = self._handlers.get(job.kind)
        error: str | None = None
        if handler is None:
            known = ", ".join(sorted(self._handlers)) or "none"
            error = (f"no handler registered for job kind {job.kind!r} (this worker handles: "
                     f"{known}); install the plugin that provides it, then replay the job")
        else:
            try:
                with LeaseKeeper(self._queue, [job.id], owner, self._lease):
                    handler(job)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            except BaseException as exc:  # SystemExit, KeyboardInterrupt: see _interrupted
                return self._interrupted(job, owner, exc)
        try:
            if error is None:
                self._queue.complete(job.id, owner)
                return "succeeded"
            failed = self._queue.fail(job.id, owner, error)
        except LeaseLostError:
            _log.warning("job %s: lease lost before reporting back; the new owner runs it",
                         job.id)
            return "lost"
        self._report(failed)
        return "dead" if failed.state is JobState.DEAD else "retried"

    def _report(self, failed: Job) -> None:
        """Hand a job this runner has just failed to ``on_failed``; what it raises is logged."""
        if self._on_failed is not None:
            try:
                self._on_failed(failed)
            except Exception:
                _log.exception("job %s: on_failed raised; ignored", failed.id)

    def _interrupted(self, job: Job, owner: str, exc: BaseException) -> str:
        """Fail a job whose handler raised SystemExit, KeyboardInterrupt or another
        BaseException, so it is retried with backoff instead of left running until its
        lease runs out.

        In a background thread the runner then carries on with the next job: a handler's
        ``sys.exit()`` there would otherwise end the thread without a word (threading ignores
        SystemExit), and no later job of any tenant would run in this process. In the main
        thread (a CLI drain, Ctrl-C) the exception is raised again once the job is failed.
        """
        reason = f"interrupted: {type(exc).__name__}" + (f": {exc}" if str(exc) else "")
        outcome = "lost"
        try:
            failed = self._queue.fail(job.id, owner, reason)
            outcome = "dead" if failed.state is JobState.DEAD else "retried"
            self._report(failed)
        except LeaseLostError:
            _log.warning("job %s: lease lost before reporting back; the new owner runs it",
                         job.id)
        except Exception:
            _log.exception("job %s was interrupted (%s) and could not be failed; it runs "
                           "again once its lease runs out", job.id, type(exc).__name__)
        if threading.current_thread() is threading.main_thread():
            raise exc
        _log.error("job %s: its handler raised %s; the job is failed (%s) and this worker "
                    "goes on", job.id, type(exc).__name__, outcome)
        return outcome

    def drain(self, max_jobs: int | None = None, deadline: datetime | None = None) -> DrainCounts:
        """Run due jobs one at a time until none is due, ``max_jobs`` ran, ``deadline``
        passed (checked between jobs, against the clock) or :meth:`stop` was called.
        """
        tally = {"claimed": 0, "succeeded": 0, "retried": 0, "dead": 0, "lost": 0}
        while not self._stop.is_set():
            if max_jobs is not None and tally["claimed"] >= max_jobs:
                break
            if deadline is not None and self._clock() >= deadline:
                break
            claimed = self._queue.claim(self._owner(), kinds=self._kinds, limit=1, lease=self._lease)
            if not claimed:
                break
            for job in claimed:
                tally["claimed"] += 1
                tally[self._run_one(job)] += 1
        return DrainCounts(**tally)

    def _loop(self) -> None:
        from .._failure_log import FailureLog

        failures = FailureLog(_log, f"queue runner {self.worker_id}")
        while not self._stop.is_set():
            try:
                claimed = self.drain().claimed
            # The store is down (or something raised SystemExit): keep the thread, try again.
            except BaseException as exc:
                failures.failed(exc, self._poll.total_seconds())
                claimed = 0
            else:
                failures.succeeded()
            if claimed == 0:
                self._stop.wait(self._poll.total_seconds())

    def start(self) -> None:
        """Drain continuously in a daemon thread of this process until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the queue runner is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"hubspot-queue-{self.worker_id}")
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Ask the thread to stop after the current job, and wait up to ``timeout`` seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return
            self._thread = None
        self._stop.clear()  # so drain() can be called synchronously again
