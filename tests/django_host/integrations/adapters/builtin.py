"""The host's own HubSpot sync, mode ``cloud``: the double only records that it was asked."""

from __future__ import annotations

from typing import Any, ClassVar

from django.http import HttpRequest

from .base import BaseAdapter


class BuiltInHubSpotAdapter(BaseAdapter):
    manifest: ClassVar[dict[str, Any]] = {"id": "hubspot"}
    calls: ClassVar[list[str]] = []

    def test_connection(self, integration: Any) -> tuple[bool, str]:
        self.calls.append("test_connection")
        return True, "built-in"

    def dispatch_sync_task(self, integration: Any) -> None:
        self.calls.append("dispatch_sync_task")

    def push_order_status(self, integration: Any, link: Any, status: Any) -> None:
        self.calls.append("push_order_status")

    def verify_webhook(self, request: HttpRequest, integration: Any) -> bool:
        self.calls.append("verify_webhook")
        return True

    def handle_webhook(self, request: HttpRequest, integration: Any) -> dict[str, Any]:
        self.calls.append("handle_webhook")
        return {"status": "ok"}
