"""The Django app: builds the host's ``PluginManager("ambac_tracker")`` once Django is ready."""

from __future__ import annotations

from typing import Any

import pluggy
from django.apps import AppConfig
from django.core.signals import request_started

from ... import host as contract


def build_plugin_manager() -> pluggy.PluginManager:
    """Build the host's plugin manager exactly as ``docs/hooks.md`` tells a host to.

    It adds the contract's specs, lets plugins add theirs (the historic
    ``ambac_add_hookspecs``) and loads every ``ambac_tracker`` entry point. Nothing here touches
    the database or HubSpot: registering the plugin opens no store and starts no thread.
    """
    pm = pluggy.PluginManager(contract.PROJECT_NAME)
    pm.add_hookspecs(contract)
    pm.hook.ambac_add_hookspecs.call_historic(kwargs={"plugin_manager": pm})
    pm.load_setuptools_entrypoints(contract.PROJECT_NAME)
    pm.check_pending()
    return pm


class AmbacHubSpotConfig(AppConfig):
    """``ambac_hubspot_plugin.contrib.django`` in ``INSTALLED_APPS``."""

    name = "ambac_hubspot_plugin.contrib.django"
    label = "ambac_hubspot"  # APP_LABEL in the package
    verbose_name = "HubSpot integration"
    default_auto_field = "django.db.models.BigAutoField"  # whatever the host's DEFAULT_AUTO_FIELD

    plugin_manager: pluggy.PluginManager

    def ready(self) -> None:
        # Django calls ready() once per process (web or worker) before serving anything; the
        # database may not even exist yet (``manage.py migrate`` runs this too), so no query:
        # enabled tenants are taken up when the first request starts.
        self.plugin_manager = build_plugin_manager()
        from . import events, permissions  # they need the host's models: loaded by now

        events.connect()
        permissions.connect()
        from .tasks import nudge_soon

        # A committed host event schedules a drain on the host's Celery (the beat is the net),
        # from a thread of its own: the commit does not wait for the cache or the broker.
        events.set_drain_trigger(lambda _alias: nudge_soon())
        request_started.connect(self._take_up_tenants, dispatch_uid="ambac_hubspot.take_up_tenants")
        from .adapter import connect_receivers  # the host's models are loaded by now

        connect_receivers()
        from .alerts import register_alert_event  # the host's notification registry: its models are loaded

        register_alert_event()

    def _take_up_tenants(self, sender: object, **kwargs: Any) -> None:
        from .startup import take_up_once  # needs the host's models: loaded only once apps are ready

        take_up_once(self.plugin_manager)
