"""The double's URLconf: the host's own integration webhook view, and the plugin's routes under
the integrations prefix, mounted with the one line docs/ambac-tracker.md tells the host to add."""

from django.urls import include, path
from integrations.views import integration_webhook

urlpatterns: list[object] = [
    path("integrations/<str:provider>/webhook/<str:tenant_id>/", integration_webhook),
    path("integrations/", include("ambac_hubspot_plugin.contrib.django.urls")),
]
