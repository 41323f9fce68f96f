"""The reference host's services with the contract's optional methods.

- :class:`~ambac_hubspot_plugin.host.SavesPluginSettings`: settings changed on a plugin's own
  pages (or its admin API) reach the same ``plugin_settings`` row that
  :meth:`~._host.ReferenceHost.change_settings` writes, so every process starts the tenant
  with them (``ambac_plugin_started``).
- :class:`~ambac_hubspot_plugin.host.GroupsWrites`: a plugin's writes in one transaction,
  each in a savepoint (:meth:`~._db.Database.group`).

A subclass rather than more of :class:`~._services.TenantServices`: that module holds the
records' rules.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from ._services import TenantServices

__all__ = ["ReferenceServices"]


class ReferenceServices(TenantServices):
    """:class:`TenantServices` with :class:`~ambac_hubspot_plugin.host.SavesPluginSettings` and
    :class:`~ambac_hubspot_plugin.host.GroupsWrites`."""

    def save_plugin_settings(self, plugin_id: str, settings: Mapping[str, Any]) -> None:
        """Store ``settings`` as the tenant's settings for ``plugin_id``; no hook is called and
        the enabled flag stays (a plugin never saved before is stored switched off)."""
        text = json.dumps(settings, sort_keys=True)
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO plugin_settings (tenant_id, plugin_id, settings, enabled, updated_at) "
                "VALUES (?, ?, ?, 0, ?) ON CONFLICT (tenant_id, plugin_id) DO UPDATE SET "
                "settings = excluded.settings, updated_at = excluded.updated_at",
                (self.tenant_id, plugin_id, text, self._host._now().isoformat()),
            )

    def grouped_writes(self) -> contextlib.AbstractContextManager[None]:
        """This thread's writes in the block commit together at its end (one SQLite
        transaction, each write a savepoint in it), and are all rolled back if it raises."""
        return self._db.group()
