"""Taking up, in this process, every tenant that has the plugin enabled (``ambac_plugin_started``).

Each web and worker process of the host must start the enabled tenants before it fires their
events (``docs/hooks.md``). ``AppConfig.ready()`` may not query the database, so the bridge
calls :func:`ensure_started` when a process first needs the plugin; it is cheap (no HubSpot
call) and safe to call again: a tenant is started once per plugin manager.
"""

from __future__ import annotations

import logging
import threading
import weakref
from pathlib import Path
from typing import Any

import pluggy
from django.db import DEFAULT_DB_ALIAS
from integrations.models import IntegrationConfig

from ... import plugin as plugin_module
from ...host import as_host_id
from .services import DjangoHostServices
from .tenant_settings import scrub_row_secrets, settings_for

__all__ = ["PROVIDER", "enabled_rows", "enabled_tenants", "ensure_started", "take_up_once"]

logger = logging.getLogger(__name__)

PROVIDER = "hubspot"
"""The ``IntegrationConfig.provider`` of this plugin's configuration."""

_lock = threading.Lock()
_started: weakref.WeakKeyDictionary[pluggy.PluginManager, set[str]] = weakref.WeakKeyDictionary()
_swept: weakref.WeakSet[pluggy.PluginManager] = weakref.WeakSet()


def enabled_rows(using: str = DEFAULT_DB_ALIAS) -> list[Any]:
    """The ``IntegrationConfig`` rows of every tenant whose HubSpot integration is enabled."""
    return list(IntegrationConfig.objects.using(using).filter(provider=PROVIDER, is_enabled=True)
                .order_by("tenant_id"))


def enabled_tenants(using: str = DEFAULT_DB_ALIAS) -> list[tuple[str, dict[str, Any]]]:
    """``(tenant id, saved settings)`` of every tenant whose HubSpot integration is enabled.

    The settings are the row's ``config`` with the credentials from its encrypted fields
    (``tenant_settings.settings_for``); a row whose settings cannot be built raises ConfigError.
    """
    return [(as_host_id(row.tenant_id), settings_for(row, using=using)) for row in enabled_rows(using)]


def ensure_started(pm: pluggy.PluginManager, *, using: str = DEFAULT_DB_ALIAS,
                   data_dir: Path | str | None = None) -> list[str]:
    """Call ``ambac_plugin_started`` for each enabled tenant ``pm`` has not started yet.

    A tenant whose start raises (bad saved settings, a store that cannot be opened) is logged
    and tried again at the next call; the others start regardless.

    :return: the ids of the tenants started by this call.
    """
    with _lock:  # two threads of one process must not start a tenant twice
        done = _started.setdefault(pm, set())
        started = []
        failed = False
        for row in enabled_rows(using):
            tenant_id = as_host_id(row.tenant_id)
            if tenant_id in done:
                continue
            services = DjangoHostServices(tenant_id, using=using, data_dir=data_dir)
            try:
                pm.hook.ambac_plugin_started(host=services, tenant_id=tenant_id,
                                             plugin_id=plugin_module.PLUGIN_ID,
                                             settings=settings_for(row, using=using))
            except Exception as exc:
                # No traceback: the settings' messages name fields, but a driver's may quote a
                # credential; the row's secrets are scrubbed from the one line logged.
                logger.error("HubSpot integration of tenant %s could not start in this process "
                             "(%s: %s); it is tried again when the process next needs it",
                             tenant_id, type(exc).__name__, scrub_row_secrets(str(exc), row))
                failed = True
                continue
            done.add(tenant_id)
            started.append(tenant_id)
        if not failed:
            _swept.add(pm)
        return started


def take_up_once(pm: pluggy.PluginManager) -> None:
    """:func:`ensure_started` until one call has started every enabled tenant, then nothing:
    what each request of a web process calls, at the cost of a set lookup once the process is up.

    Tenants enabled later in another process are taken up by the first event for them (the
    event hooks' work, not this sweep's). An error (the database unreachable) is logged and the
    request goes on: the next one sweeps again.
    """
    if pm in _swept:
        return
    try:
        ensure_started(pm)
    except Exception:
        logger.exception("could not read which tenants have the HubSpot integration enabled; "
                         "the next request tries again")
