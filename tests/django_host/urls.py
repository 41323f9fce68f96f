"""The double's URLconf: the plugin's routes under the integrations prefix, mounted with the one
line docs/ambac-tracker.md tells the host to add."""

from django.urls import include, path

urlpatterns = [
    path("integrations/", include("ambac_hubspot_plugin.contrib.django.urls")),
]
