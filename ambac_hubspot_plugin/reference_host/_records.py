"""The records the reference host's own API returns: notifications, plugin starts, task runs."""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from datetime import datetime

import attrs

_uuid7_lock = threading.Lock()
_uuid7_last = [0, 0]  # the last (milliseconds, counter) handed out in this process


def new_uuid7() -> str:
    """A new UUIDv7 as text, as Ambac Tracker keys tenants, orders and companies (RFC 9562).

    48 bits of Unix milliseconds, then a 12-bit counter that restarts at a random value each
    millisecond, then 62 random bits: ids made by one process sort by creation, and ids from
    several processes do not collide. (Python 3.14's ``uuid.uuid7`` does the same.)
    """
    with _uuid7_lock:
        millis = time.time_ns() // 1_000_000
        last_millis, counter = _uuid7_last
        if millis > last_millis:
            counter = secrets.randbits(11)  # room below 4096 for 2048 ids in one millisecond
        else:
            millis, counter = last_millis, counter + 1
            if counter > 0xFFF:
                millis, counter = millis + 1, 0
        _uuid7_last[:] = [millis, counter]
    value = (millis << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | secrets.randbits(62)
    return str(uuid.UUID(int=value))

NOTIFICATION_LEVELS = ("info", "warning", "error")
"""The levels ``notify_admins`` accepts, least severe first."""


@attrs.frozen
class Notification:
    """A notification the host recorded for a tenant's admins (``notify_admins``)."""

    id: int
    tenant_id: str
    subject: str
    message: str
    level: str
    created_at: datetime


@attrs.frozen
class PluginStart:
    """The outcome of calling ``ambac_plugin_started`` for one enabled plugin at host start."""

    tenant_id: str
    plugin_id: str
    reports: tuple[object, ...] = ()
    error: str | None = None


@attrs.frozen
class TaskRun:
    """The outcome of one periodic task run by :meth:`ReferenceHost.run_due_tasks`."""

    name: str
    started_at: datetime
    error: str | None = None
