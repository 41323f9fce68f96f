"""The double's ``BaseAdapter`` (SMOKE_FINDINGS item 7): the registry builds an adapter with no
arguments and shares it, so every method takes the tenant's ``IntegrationConfig`` row; the
catalog reads ``manifest.get("id")``."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


class BaseAdapter:
    """One provider's integration, shared by every tenant of the process."""

    manifest: dict[str, Any] | None = None

    def test_connection(self, integration: Any) -> tuple[bool, str]:
        raise NotImplementedError

    def dispatch_sync_task(self, integration: Any) -> Any:
        raise NotImplementedError

    def push_order_status(self, integration: Any, link: Any, status: Any) -> Any:
        raise NotImplementedError

    def verify_webhook(self, request: HttpRequest, integration: Any) -> bool:
        raise NotImplementedError

    def handle_webhook(self, request: HttpRequest, integration: Any) -> dict[str, Any]:
        raise NotImplementedError
