"""The Django bridge for Ambac Tracker: add ``"ambac_hubspot_plugin.contrib.django"`` to
``INSTALLED_APPS`` (extra ``[django]``).

This subpackage is the only code of the plugin that imports Django; the core never imports it.
Its app builds the host's plugin manager at start (:func:`plugin_manager`), and
:class:`~ambac_hubspot_plugin.contrib.django.services.DjangoHostServices` implements the
contract's ``HostServices`` on the host's ORM, inside the host's ``tenant_context``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pluggy

__all__ = ["APP_LABEL", "plugin_manager"]

APP_LABEL = "ambac_hubspot"
"""The app's label in ``INSTALLED_APPS`` (its tables and migrations are named after it)."""


def plugin_manager() -> pluggy.PluginManager:
    """The plugin manager the app built when Django started (see ``apps.AmbacHubSpotConfig``)."""
    from django.apps import apps

    manager: pluggy.PluginManager = apps.get_app_config(APP_LABEL).plugin_manager  # type: ignore[attr-defined]  # set by AmbacHubSpotConfig.ready
    return manager
