"""The real Ambac Tracker's side of ``test_realhost_smoke``: run inside the host with
``manage.py shell -c "import runpy; runpy.run_path('<this file>', run_name='__main__')"``.

It reads one JSON command a line on stdin and answers each with one line on stdout starting
with :data:`MARK` (the host may print its own lines too). It uses only the host's public import
paths (``Tracker.models``, ``Tracker.utils.tenant_context``, ``integrations.models``, Django's
own) and the bridge's; nothing of the host is copied here. Never imported by the test suite:
pytest runs it in the host's interpreter.
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
import uuid
from typing import Any

MARK = "@@realhost "


class _RolledBack(Exception):
    """Raised inside a transaction to roll it back, as a failing view would."""


def _outbox_rows() -> int:
    from ambac_hubspot_plugin.contrib.django.models import HostEventOutbox

    return HostEventOutbox.objects.count()


class Driver:
    """The commands the test sends."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()

    def tenant(self, slug: str) -> dict[str, Any]:
        """The id of the tenant ``setup_tenant`` created, and what its admin group holds."""
        from Tracker.models import Tenant, TenantGroup

        tenant = Tenant.objects.get(slug=slug)
        admin = TenantGroup.objects.filter(tenant=tenant, name="Tenant Admin").first()
        granted = [] if admin is None else sorted(admin.permissions.filter(
            content_type__app_label="ambac_hubspot").values_list("codename", flat=True))
        return {"tenant_id": str(tenant.pk), "admin_group": admin is not None,
                "admin_group_integration_permissions": granted}

    def serve(self) -> dict[str, Any]:
        """Serve the host's own WSGI application (``settings.WSGI_APPLICATION``) on loopback."""
        from django.core.servers.basehttp import get_internal_wsgi_application

        from ambac_hubspot_plugin._wsgi_server import served_on_loopback

        url = self._stack.enter_context(served_on_loopback(get_internal_wsgi_application(), name="realhost"))
        return {"url": url}

    def orders(self, tenant_id: str, external_id: str) -> dict[str, Any]:
        from Tracker.models import Orders
        from Tracker.utils.tenant_context import tenant_context

        with tenant_context(tenant_id):
            rows = list(Orders.objects.filter(external_id=external_id).values_list("pk", "order_status", "name"))
        return {"orders": [[str(pk), status, name] for pk, status, name in rows]}

    def drain(self) -> dict[str, Any]:
        """The Celery drain task, called synchronously in this process (no worker)."""
        from ambac_hubspot_plugin.contrib.django.tasks import drain

        ran = drain()
        return {"periodic_tasks_ran": ran, "outbox_rows_left": _outbox_rows()}

    def save_status(self, tenant_id: str, order_id: str, status: str, rollback: bool) -> dict[str, Any]:
        """Save an order's status as the host does (``update_fields``), in a transaction that
        commits, or that raises after the save when ``rollback``."""
        from django.db import transaction
        from Tracker.models import Orders
        from Tracker.utils.tenant_context import tenant_context

        try:
            with transaction.atomic(), tenant_context(tenant_id):
                row = Orders.objects.get(pk=order_id)
                row.order_status = status
                row.save(update_fields=["order_status"])
                if rollback:
                    raise _RolledBack
        except _RolledBack:
            pass
        with tenant_context(tenant_id):
            saved = Orders.objects.get(pk=order_id).order_status
        return {"order_status": saved, "outbox_rows": _outbox_rows()}

    def ship(self, tenant_id: str, order_id: str, carrier: str, tracking_number: str) -> dict[str, Any]:
        """Record a shipment as the host's shipping code would: in its transaction."""
        from datetime import date

        from django.db import transaction
        from Tracker.models import Orders
        from Tracker.utils.tenant_context import tenant_context

        from ambac_hubspot_plugin.contrib.django.events import record_shipment
        from ambac_hubspot_plugin.host import Shipment

        with transaction.atomic(), tenant_context(tenant_id):
            record_shipment(Orders.objects.get(pk=order_id),
                            Shipment(carrier=carrier, tracking_number=tracking_number, ship_date=date.today()))
        return {"outbox_rows": _outbox_rows()}

    def routes(self, tenant_id: str, path: str) -> dict[str, Any]:
        """GET an admin route anonymously, as a user of the tenant without the permission, and as
        one in a custom group holding ``view_integrations`` (signed in, and by the host's API
        token); answer the status codes."""
        from django.contrib.auth.models import Permission
        from django.test import Client
        from Tracker.models import TenantGroup, User, UserRole

        def user(label: str) -> Any:
            name = f"smoke-{label}-{uuid.uuid4().hex[:12]}"
            return User.objects.create_user(username=name, email=f"{name}@smoke.example", tenant_id=tenant_id,
                                            user_type="INTERNAL")

        refused, allowed = user("refused"), user("allowed")
        group = TenantGroup.objects.create(tenant_id=tenant_id, name=f"Smoke integrations {uuid.uuid4().hex[:8]}")
        group.permissions.add(Permission.objects.get(content_type__app_label="ambac_hubspot",
                                                     codename="view_integrations"))
        UserRole.objects.create(user=allowed, group=group)
        codes = {}
        for label, row in (("anonymous", None), ("without_permission", refused), ("with_permission", allowed)):
            client = Client(HTTP_HOST="127.0.0.1")
            if row is not None:
                client.force_login(row)
            codes[label] = client.get(path).status_code
        from rest_framework.authtoken.models import Token

        key = Token.objects.create(user=allowed).key
        codes["with_permission_by_token"] = Client(HTTP_HOST="127.0.0.1").get(
            path, HTTP_AUTHORIZATION=f"Token {key}").status_code
        codes["bad_token"] = Client(HTTP_HOST="127.0.0.1").get(path, HTTP_AUTHORIZATION="Token nope").status_code
        return {"status_codes": codes}

    def disable(self, tenant_id: str) -> dict[str, Any]:
        """Switch the tenant's integration off as the Integrations page does (saving the row)."""
        from integrations.models import IntegrationConfig

        row = IntegrationConfig.objects.get(tenant_id=tenant_id, provider="hubspot")
        row.is_enabled = False
        row.save()
        return {"is_enabled": row.is_enabled}

    def close(self) -> None:
        self._stack.close()


def main() -> None:
    driver = Driver()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            request = json.loads(line)
            command = request.pop("cmd")
            try:
                answer = getattr(driver, command)(**request)
            except Exception as exc:
                answer = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            print(MARK + json.dumps(answer), flush=True)
    finally:
        driver.close()


if __name__ == "__main__":
    main()
