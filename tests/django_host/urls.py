"""The double's URLconf: the host's integration webhook view (the bridge's own views come later)."""

from django.urls import path
from integrations.views import integration_webhook

urlpatterns: list[object] = [
    path("integrations/<str:provider>/webhook/<str:tenant_id>/", integration_webhook),
]
