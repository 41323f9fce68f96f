"""Keeping each process's tenants in step with the host's ``IntegrationConfig`` rows.

Each web and worker process of the host must start the enabled tenants before it fires their
events (``docs/hooks.md``), and must stop working for a tenant disabled in another process.
``AppConfig.ready()`` may not query the database, so the bridge calls :func:`ensure_started`
when a process needs the plugin: every drain of a worker, and a web process's requests at most
every :data:`RECHECK_SECONDS` (:func:`take_up_once`). It compares the enabled rows with what the
process started: a tenant newly enabled is started (``ambac_plugin_started``), one whose
settings or credentials changed is started again with them (the hook applies new settings), and
one no longer enabled is forgotten here (``ambac_plugin_stopped``). Each costs one query and no
HubSpot call; the process where the admin made the change has already run the matching
``ambac_plugin_enabled`` / ``ambac_plugin_disabled`` / ``ambac_settings_changed`` (``adapter``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import pluggy
from django.conf import settings as django_settings
from django.db import DEFAULT_DB_ALIAS
from integrations.models import IntegrationConfig

from ... import plugin as plugin_module
from ...errors import ConfigError
from ...host import as_host_id
from .services import DjangoHostServices
from .tenant_settings import PROVIDER, SECRET_FIELDS, scrub_row_secrets, settings_for

__all__ = ["PROVIDER", "RECHECK_SECONDS", "enabled_rows", "enabled_tenant_ids", "enabled_tenants",
           "ensure_started", "not_started_here", "row_fingerprint", "take_up_once"]

logger = logging.getLogger(__name__)

RECHECK_SECONDS = 5.0
"""How often, at most, a web process's requests compare its tenants with the rows (the host's
``HUBSPOT_TENANT_RECHECK_SECONDS`` setting overrides it): a disable or settings change made in
another process applies here within that time; worker processes compare on every drain."""

_lock = threading.Lock()
# Per plugin manager (one per process in a host): tenant id -> fingerprint of the row it started.
_started: weakref.WeakKeyDictionary[pluggy.PluginManager, dict[str, str]] = weakref.WeakKeyDictionary()
_checked_at: weakref.WeakKeyDictionary[pluggy.PluginManager, float] = weakref.WeakKeyDictionary()


def row_fingerprint(row: Any) -> str:
    """A digest of what a row's tenant runs with (``config`` and the encrypted credentials):
    equal digests, same settings. A digest, so no secret is kept in the process's memory."""
    state = [row.config, *(str(getattr(row, field, "") or "") for field in SECRET_FIELDS)]
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()


def enabled_rows(using: str = DEFAULT_DB_ALIAS) -> list[Any]:
    """The ``IntegrationConfig`` rows of every tenant whose HubSpot integration is enabled."""
    return list(IntegrationConfig.objects.using(using).filter(provider=PROVIDER, is_enabled=True)
                .order_by("tenant_id"))


def enabled_tenant_ids(using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """The ids of every tenant whose HubSpot integration is enabled; no settings are built, so
    one tenant's invalid saved settings hide no other tenant."""
    return [as_host_id(row.tenant_id) for row in enabled_rows(using)]


def enabled_tenants(using: str = DEFAULT_DB_ALIAS) -> list[tuple[str, dict[str, Any]]]:
    """``(tenant id, saved settings)`` of every tenant whose HubSpot integration is enabled.

    The settings are the row's ``config`` with the credentials from its encrypted fields
    (``tenant_settings.settings_for``). A row whose settings cannot be built (ConfigError) is
    logged, without its secrets, and left out: the other tenants are returned regardless.
    """
    tenants = []
    for row in enabled_rows(using):
        tenant_id = as_host_id(row.tenant_id)
        try:
            tenants.append((tenant_id, settings_for(row, using=using)))
        except ConfigError as exc:
            logger.error("HubSpot integration of tenant %s is skipped: its saved settings are "
                         "invalid (%s)", tenant_id, scrub_row_secrets(str(exc), row))
    return tenants


def ensure_started(pm: pluggy.PluginManager, *, using: str = DEFAULT_DB_ALIAS,
                   data_dir: Path | str | None = None) -> list[str]:
    """Bring ``pm``'s tenants in step with the enabled rows (see the module's docstring).

    A tenant whose start raises (bad saved settings, a store that cannot be opened) is logged
    and tried again at the next call; the others start regardless. A tenant no longer enabled
    is forgotten even when its start had failed.

    :return: the ids of the tenants started (or started again with new settings) by this call.
    """
    with _lock:  # two threads of one process must not start a tenant twice
        done = _started.setdefault(pm, {})
        started = []
        rows = enabled_rows(using)
        for row in rows:
            tenant_id = as_host_id(row.tenant_id)
            fingerprint = row_fingerprint(row)
            if done.get(tenant_id) == fingerprint:
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
                done.pop(tenant_id, None)
                continue
            done[tenant_id] = fingerprint
            started.append(tenant_id)
        enabled = {as_host_id(row.tenant_id) for row in rows}
        for tenant_id in [tenant for tenant in done if tenant not in enabled]:
            _stop(pm, tenant_id, using, data_dir)
            del done[tenant_id]
        return started


def _stop(pm: pluggy.PluginManager, tenant_id: str, using: str, data_dir: Path | str | None) -> None:
    try:
        pm.hook.ambac_plugin_stopped(host=DjangoHostServices(tenant_id, using=using, data_dir=data_dir),
                                     tenant_id=tenant_id, plugin_id=plugin_module.PLUGIN_ID)
    except Exception:
        logger.exception("HubSpot integration of tenant %s, disabled in another process, could not "
                         "be stopped in this one", tenant_id)


def not_started_here(pm: pluggy.PluginManager, tenant_id: str, using: str = DEFAULT_DB_ALIAS) -> str | None:
    """Why the plugin would do nothing for ``tenant_id`` in this process although the host has
    its integration enabled (its start failed here: see the logged start error), or None when
    it runs here or is enabled nowhere (then there is nothing to do)."""
    plugin = pm.get_plugin(plugin_module.RUNTIME_NAME)
    if plugin is None or plugin.runtime.is_enabled(tenant_id):
        return None
    if not IntegrationConfig.objects.using(using).filter(
            tenant_id=tenant_id, provider=PROVIDER, is_enabled=True).exists():
        return None
    return ("the tenant's HubSpot integration is enabled in the host but could not start in this "
            "process (see its logged start error, usually invalid saved settings)")


def take_up_once(pm: pluggy.PluginManager) -> None:
    """:func:`ensure_started` at most every :data:`RECHECK_SECONDS` (what each request of a web
    process calls): between checks it costs a clock read.

    An error (the database unreachable) is logged and the request goes on; the next check
    comes after the same interval.
    """
    interval = float(getattr(django_settings, "HUBSPOT_TENANT_RECHECK_SECONDS", RECHECK_SECONDS))
    now = time.monotonic()
    last = _checked_at.get(pm)
    if last is not None and now - last < interval:
        return
    _checked_at[pm] = now
    try:
        ensure_started(pm)
    except Exception:
        logger.exception("could not read which tenants have the HubSpot integration enabled; "
                         "the next check tries again")
