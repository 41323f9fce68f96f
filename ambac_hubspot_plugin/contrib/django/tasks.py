"""The plugin's work on the host's Celery: one drain task, nudged after each stored delivery.

:func:`drain` (``ambac_hubspot.drain``) runs the plugin's periodic work (``ambac_periodic_tasks``,
i.e. ``hubspot.tick``: queued jobs, due syncs and reconciles, alerts) in a worker process, as the
reference host's scheduler does. It runs when :func:`nudge` asks (right after a webhook or an
outbox row is stored: closed won to order without waiting for a schedule) and every
:data:`BEAT_SECONDS` from the django-celery-beat entry the app's migration creates (the safety
net: a nudge lost with its broker message is made up within seconds). Two drains at once are
harmless: jobs are claimed in the plugin's store.

Celery finds this module by ``app.autodiscover_tasks()``, which the host's Celery app calls;
importing it connects each worker process's start to :func:`~.startup.ensure_started`.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery import shared_task
from celery.signals import worker_process_init
from django.core.cache import cache

from ...host import PeriodicTask
from . import plugin_manager
from .outbox import drain_outbox
from .services import DjangoHostServices
from .startup import enabled_tenant_ids, ensure_started

__all__ = ["BEAT_SECONDS", "DRAIN_TASK", "NUDGE_COUNTDOWN", "NUDGE_KEY", "drain", "nudge", "nudge_soon"]

logger = logging.getLogger(__name__)

DRAIN_TASK = "ambac_hubspot.drain"
"""The Celery name of :func:`drain` (the beat entry and the routing of a host name it)."""
BEAT_SECONDS = 10
"""The beat entry's interval: the plugin's ``hubspot.tick`` interval."""
NUDGE_COUNTDOWN = 0.5
"""Seconds between a nudge and its drain: a burst of deliveries in that time shares one drain."""
NUDGE_KEY = "ambac_hubspot:drain-nudged"
"""The cache key marking a drain as asked for and not yet started."""
OUTBOX_BATCH = 500
"""Host events one drain hands to the plugin at most (the rest wait for the next drain)."""
_NUDGE_KEY_TTL = 60  # a drain whose message was lost stops silencing nudges after this


@shared_task(name=DRAIN_TASK, ignore_result=True)
def drain() -> int:
    """Hand the host's committed events to the plugin, then run its periodic tasks once for
    every enabled tenant; return how many tasks ran.

    Tenants enabled since this process started are taken up first (no HubSpot call); one that
    cannot start (invalid saved settings) is logged and left out, and the others' work runs. A
    failing task is logged, and the others still run.
    """
    cache.delete(NUDGE_KEY)  # a delivery stored from now on needs a drain after this one
    pm = plugin_manager()
    ensure_started(pm)
    # The host's committed events first, so the tick below pushes them in the same drain.
    drain_outbox(pm, OUTBOX_BATCH)
    # Ids only: building each tenant's settings here would let one tenant's invalid settings
    # stop every tenant's work (ensure_started has logged that tenant and left it out).
    tenants = enabled_tenant_ids()
    if not tenants:
        return 0
    # The periodic tasks cover every tenant; any tenant's services are the host's to give them.
    services = DjangoHostServices(tenants[0])
    ran = 0
    for batch in pm.hook.ambac_periodic_tasks():
        for task in batch:
            if not isinstance(task, PeriodicTask):
                logger.error("ambac_periodic_tasks returned %r, not a PeriodicTask; skipped", task)
                continue
            try:
                task.run(services)
            except Exception:
                logger.exception("periodic task %r failed; the next drain runs it again", task.name)
            ran += 1
    return ran


def nudge(countdown: float = NUDGE_COUNTDOWN) -> bool:
    """Ask for a :func:`drain` in ``countdown`` seconds, unless one is already asked for.

    Call it once something for the plugin to do is stored (a webhook delivery, an outbox row
    after its transaction commits). A burst of calls makes one task: a cache key (the host's
    cache, shared by its processes) marks the drain as pending until it starts. It never
    raises: a broker that cannot be reached is logged, and the beat's drain does the work.

    :return: whether this call enqueued a drain.
    """
    try:
        if not cache.add(NUDGE_KEY, 1, timeout=_NUDGE_KEY_TTL):
            return False
    except Exception:
        logger.exception("could not reach the cache to de-duplicate a HubSpot drain; enqueueing one anyway")
    try:
        drain.apply_async(countdown=countdown)
    except Exception:
        logger.exception("could not enqueue the HubSpot drain; the scheduled one does the work")
        _forget_nudge()
        return False
    return True


class _Nudger:
    """A daemon thread of this process sending the nudges :func:`nudge_soon` asks for; started
    at the first request (and again in a forked child, which has no copy of it)."""

    def __init__(self) -> None:
        self._wanted = threading.Event()
        self._lock = threading.Lock()
        self._pid: int | None = None

    def request(self) -> None:
        self._wanted.set()
        if self._pid != os.getpid():
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            threading.Thread(target=self._run, name="ambac-hubspot-nudge", daemon=True).start()
            self._pid = os.getpid()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()  # a request from now on makes one more round
            nudge()


_nudger = _Nudger()


def nudge_soon() -> None:
    """:func:`nudge` from a thread of its own, without waiting for it: what the host's commits
    call (the app sets it as the outbox's drain trigger), so that a save pays no round trip to
    the cache or the broker. Requests made while a nudge is under way make one more.

    A process that exits before its thread ran loses the nudge; the beat's drain does the work.
    With an eager Celery (the host's tests) the nudge, and so the drain, runs at once, here.
    """
    if drain.app.conf.task_always_eager:
        nudge()
    else:
        _nudger.request()


def _forget_nudge() -> None:
    try:
        cache.delete(NUDGE_KEY)  # the next nudge tries again
    except Exception:
        logger.exception("could not clear the HubSpot drain's nudge mark; it expires by itself")


@worker_process_init.connect(dispatch_uid="ambac_hubspot.worker_take_up")
def _take_up_in_worker(**_kwargs: Any) -> None:
    """Each worker process takes up the enabled tenants as it starts (no HubSpot call).

    A failure (the database unreachable) is logged, and the process starts anyway: each drain
    takes up the tenants it has not started yet.
    """
    try:
        ensure_started(plugin_manager())
    except Exception:
        logger.exception("could not take up the HubSpot integration's tenants as this worker "
                         "process started; its first drain tries again")
