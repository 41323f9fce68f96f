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
from django.conf import settings as django_settings
from django.db import DEFAULT_DB_ALIAS
from integrations.models import IntegrationConfig

from ... import plugin as plugin_module
from ...host import as_host_id
from ...settings import RATE_LIMIT_BACKEND_SCHEMES
from .services import DjangoHostServices

__all__ = ["PROVIDER", "enabled_tenants", "ensure_started", "take_up_once", "with_host_defaults"]

logger = logging.getLogger(__name__)

PROVIDER = "hubspot"
"""The ``IntegrationConfig.provider`` of this plugin's configuration."""

_lock = threading.Lock()
_started: weakref.WeakKeyDictionary[pluggy.PluginManager, set[str]] = weakref.WeakKeyDictionary()
_swept: weakref.WeakSet[pluggy.PluginManager] = weakref.WeakSet()


def enabled_tenants(using: str = DEFAULT_DB_ALIAS) -> list[tuple[str, dict[str, Any]]]:
    """``(tenant id, saved settings)`` of every tenant whose HubSpot integration is enabled.

    The settings are the configuration's ``config``; moving the credentials into the host's
    encrypted fields is later work (docs/ambac-tracker.md).
    """
    rows = IntegrationConfig.objects.using(using).filter(provider=PROVIDER, is_enabled=True).order_by("tenant_id")
    return [(as_host_id(row.tenant_id), with_host_defaults(row.config)) for row in rows]


def with_host_defaults(config: Any) -> dict[str, Any]:
    """A tenant's saved settings, with what the host supplies where they leave it unset.

    ``rate_limit_backend``: the host's ``CELERY_BROKER_URL`` when that is a Redis URL, so every
    worker and web process of the host counts one HubSpot budget per portal.
    """
    config = dict(config)
    broker = getattr(django_settings, "CELERY_BROKER_URL", None)
    if (config.get("rate_limit_backend") is None and isinstance(broker, str)
            and broker.startswith(RATE_LIMIT_BACKEND_SCHEMES)):
        config["rate_limit_backend"] = broker
    return config


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
        for tenant_id, settings in enabled_tenants(using):
            if tenant_id in done:
                continue
            services = DjangoHostServices(tenant_id, using=using, data_dir=data_dir)
            try:
                pm.hook.ambac_plugin_started(host=services, tenant_id=tenant_id,
                                             plugin_id=plugin_module.PLUGIN_ID, settings=settings)
            except Exception:
                logger.exception("HubSpot integration of tenant %s could not start in this process; "
                                 "it is tried again when the process next needs it", tenant_id)
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
