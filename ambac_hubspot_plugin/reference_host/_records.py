"""The records the reference host's own API returns: notifications, plugin starts, task runs."""

from __future__ import annotations

from datetime import datetime

import attrs

NOTIFICATION_LEVELS = ("info", "warning", "error")
"""The levels ``notify_admins`` accepts, least severe first."""


@attrs.frozen
class Notification:
    """A notification the host recorded for a tenant's admins (``notify_admins``)."""

    id: int
    tenant_id: int
    subject: str
    message: str
    level: str
    created_at: datetime


@attrs.frozen
class PluginStart:
    """The outcome of calling ``ambac_plugin_started`` for one enabled plugin at host start."""

    tenant_id: int
    plugin_id: str
    reports: tuple[object, ...] = ()
    error: str | None = None


@attrs.frozen
class TaskRun:
    """The outcome of one periodic task run by :meth:`ReferenceHost.run_due_tasks`."""

    name: str
    started_at: datetime
    error: str | None = None
