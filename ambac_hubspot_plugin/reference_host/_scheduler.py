"""The reference host's scheduler: the plugins' periodic tasks, run when due.

Runs are recorded in the host's database, so several processes sharing it run each task once
per interval; :meth:`Scheduler.start` adds a background thread that polls for due tasks.
:class:`~._host.ReferenceHost` delegates its scheduler methods here.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Protocol

import pluggy

from ..host import HostServices, PeriodicTask
from ._db import Database
from ._records import TaskRun
from ._validate import to_utc

# The package's name, as every module of the reference host logs under (see _host.py).
logger = logging.getLogger(__package__)


class SchedulerHost(Protocol):
    """What :class:`Scheduler` needs of its host, :class:`~._host.ReferenceHost`.

    A Protocol rather than an import of the host, which owns the scheduler: the two modules
    would otherwise import each other. Calls go through the host's methods, as they did when
    the scheduler was part of it.
    """

    @property
    def plugin_manager(self) -> pluggy.PluginManager: ...

    @property
    def _db(self) -> Database: ...

    def _now(self) -> datetime: ...

    def tenant_ids(self) -> list[str]: ...

    def services(self, tenant_id: str) -> HostServices: ...

    def periodic_tasks(self) -> list[PeriodicTask]: ...

    def run_due_tasks(self, now: datetime | None = None) -> list[TaskRun]: ...


class Scheduler:
    """The periodic tasks of one host, their claims in its database, and the polling thread."""

    def __init__(self, host: SchedulerHost) -> None:
        self._host = host
        self._tasks: list[PeriodicTask] | None = None
        self._thread: tuple[threading.Thread, threading.Event] | None = None

    def periodic_tasks(self) -> list[PeriodicTask]:
        """The plugins' periodic tasks, asked for once and kept."""
        if self._tasks is None:
            tasks: list[PeriodicTask] = []
            for batch in self._host.plugin_manager.hook.ambac_periodic_tasks():
                for task in batch:
                    if not isinstance(task, PeriodicTask):
                        raise TypeError(
                            f"ambac_periodic_tasks returned {task!r}, not a PeriodicTask"
                        )
                    if any(other.name == task.name for other in tasks):
                        raise ValueError(f"two periodic tasks are named {task.name!r}")
                    tasks.append(task)
            self._tasks = tasks
        return self._tasks

    def run_due_tasks(self, now: datetime | None = None) -> list[TaskRun]:
        """Run the due tasks; see :meth:`~._host.ReferenceHost.run_due_tasks`."""
        moment = to_utc(now, "now") if now is not None else self._host._now()
        tenants = self._host.tenant_ids()
        if not tenants:
            return []
        services = self._host.services(tenants[0])
        runs: list[TaskRun] = []
        for task in self._host.periodic_tasks():
            if not self._claim(task, moment):
                continue
            try:
                task.run(services)
            except Exception as exc:
                logger.exception("periodic task %r failed", task.name)
                runs.append(TaskRun(task.name, moment, f"{type(exc).__name__}: {exc}"))
            else:
                runs.append(TaskRun(task.name, moment))
        return runs

    def _claim(self, task: PeriodicTask, moment: datetime) -> bool:
        # Check and mark in one write transaction (BEGIN IMMEDIATE), so two workers sharing the
        # database cannot both find the task due; it commits before the task runs, so a long
        # task does not hold SQLite's write lock, and a failing one waits a full interval.
        with self._host._db.write() as conn:
            row = conn.execute(
                "SELECT last_run_at FROM task_runs WHERE name = ?", (task.name,)
            ).fetchone()
            if row is not None and moment - datetime.fromisoformat(row[0]) < task.interval:
                return False
            conn.execute(
                "INSERT INTO task_runs (name, last_run_at) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET last_run_at = excluded.last_run_at",
                (task.name, moment.isoformat()),
            )
        return True

    def start(self, poll_seconds: float = 1.0) -> None:
        """Start the background thread; see :meth:`~._host.ReferenceHost.start_scheduler`."""
        if self._thread is not None:
            raise RuntimeError("the scheduler is already running")
        # An Event, not a sleep: stop() wakes the loop at once instead of after poll_seconds.
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                try:
                    self._host.run_due_tasks()
                except Exception:  # the loop must outlive one bad round
                    logger.exception("scheduler round failed")
                stop.wait(poll_seconds)

        thread = threading.Thread(target=loop, name="reference-host-scheduler", daemon=True)
        self._thread = (thread, stop)
        thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background thread, if running, and wait for it."""
        if self._thread is None:
            return
        thread, stop = self._thread
        stop.set()
        thread.join(timeout)
        self._thread = None
