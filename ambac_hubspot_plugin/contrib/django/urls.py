"""Every route the plugins offer, for one line in the host's URLconf::

    path("integrations/", include("ambac_hubspot_plugin.contrib.django.urls")),

The routes come from the plugin manager the app built at start (``ambac_http_routes``); see
:mod:`.views` for how each is served.
"""

from __future__ import annotations

from . import plugin_manager
from .views import plugin_urlpatterns

app_name = "ambac_hubspot"
urlpatterns = plugin_urlpatterns(plugin_manager())
