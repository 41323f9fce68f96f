"""The double's integration registry (HOST.md): ``settings.INTEGRATION_ADAPTERS[(provider, mode)]``
names an adapter class, ``settings.<PROVIDER>_MODE`` chooses the mode (default ``cloud``), and
every adapter is a :class:`BaseAdapter` built with the tenant's ``IntegrationConfig``.

The method names are the host's; their arguments and results here are the double's reading of
them: ``test_connection`` answers ``{"success": bool, "message": str}``, ``dispatch_sync_task``
``{"queued": bool, ...}``, ``get_sync_logs`` a list of runs, newest first.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

DEFAULT_MODE = "cloud"


class BaseAdapter:
    """One provider's integration for one tenant."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def test_connection(self) -> dict[str, Any]:
        raise NotImplementedError

    def dispatch_sync_task(self, sync_type: str = "incremental") -> dict[str, Any]:
        raise NotImplementedError

    def push_order_status(self, order: Any) -> None:
        raise NotImplementedError

    def verify_webhook(self, request: HttpRequest) -> bool:
        raise NotImplementedError

    def handle_webhook(self, request: HttpRequest) -> HttpResponse:
        raise NotImplementedError

    def get_sync_logs(self, limit: int = 20) -> list[dict[str, Any]]:
        raise NotImplementedError


class BuiltInHubSpotAdapter(BaseAdapter):
    """The host's own HubSpot sync, mode ``cloud``: the double only records that it was asked."""

    calls: list[str] = []

    def test_connection(self) -> dict[str, Any]:
        self.calls.append("test_connection")
        return {"success": True, "message": "built-in"}

    def dispatch_sync_task(self, sync_type: str = "incremental") -> dict[str, Any]:
        self.calls.append("dispatch_sync_task")
        return {"queued": True}

    def push_order_status(self, order: Any) -> None:
        self.calls.append("push_order_status")

    def verify_webhook(self, request: HttpRequest) -> bool:
        self.calls.append("verify_webhook")
        return True

    def handle_webhook(self, request: HttpRequest) -> HttpResponse:
        self.calls.append("handle_webhook")
        return HttpResponse(status=200)

    def get_sync_logs(self, limit: int = 20) -> list[dict[str, Any]]:
        return []


def adapter_mode(provider: str) -> str:
    """The mode ``settings.<PROVIDER>_MODE`` chooses for ``provider``."""
    return str(getattr(settings, f"{provider.upper()}_MODE", DEFAULT_MODE))


def get_adapter(config: Any) -> BaseAdapter:
    """The registry's adapter for ``config``'s provider in its chosen mode."""
    path = settings.INTEGRATION_ADAPTERS[(config.provider, adapter_mode(config.provider))]
    adapter: BaseAdapter = import_string(path)(config)
    return adapter
