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
import re
import sys
import traceback
import uuid
from typing import Any, NamedTuple

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
        from Tracker.models import TenantGroup, UserRole

        refused, allowed = _user(tenant_id, "refused")[0], _user(tenant_id, "allowed")[0]
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

    def pages(self, tenant_id: str, base: str) -> dict[str, Any]:
        """Use the admin pages over HTTP at ``base`` (the host's WSGI application, its CSRF
        middleware active) as browsers signed in through the host's own login: a tenant admin
        reads each page, starts a dry run and a sync with the page's token (no Django token) and
        a sync from another origin; a user of the tenant without ``view_integrations`` is
        refused. Answers what each request got and how many runs the history held."""
        from django.urls import reverse
        from Tracker.models import TenantGroup, UserRole

        prefix = reverse("ambac_hubspot:hubspot-page-status")  # where the host really mounts them
        admin, admin_password = _user(tenant_id, "admin")
        UserRole.objects.create(user=admin, group=TenantGroup.objects.get(tenant_id=tenant_id, name="Tenant Admin"))
        stranger, stranger_password = _user(tenant_id, "stranger")
        browser = _Browser(base)
        got: dict[str, Any] = {"prefix": prefix, "login": browser.sign_in(admin.email, admin_password)}
        for page in ("", "/conflicts", "/history", "/deals", "/settings"):
            answer = browser.request("GET", prefix + page)
            got[f"GET {page or '/'}"] = [answer.status, answer.content_type]
        token = _form_token(browser.request("GET", prefix + "/history").text)
        runs = reverse("ambac_hubspot:hubspot-history")
        got["runs_before"] = len(browser.request("GET", runs).json()["runs"])
        sync = prefix + "/history/sync"
        # A sync, not a dry run, from the other origin: had it run, the history would show it.
        foreign = browser.request("POST", sync, form={"csrf_token": token, "mode": "sync"},
                                  origin="https://evil.example")
        got["POST sync, foreign origin"] = [foreign.status, foreign.content_type, "Nothing was changed" in foreign.text]
        got["runs_after_foreign"] = len(browser.request("GET", runs).json()["runs"])
        for mode in ("dry_run", "sync"):
            done = browser.request("POST", sync, form={"csrf_token": token, "mode": mode})
            location = done.headers.get("Location", "")
            # As a browser does: the fragment stays in the browser.
            shown = browser.request("GET", location.split("#")[0]).text if done.status == 303 else ""
            got[f"POST {mode}"] = [done.status, location.split("?")[0],
                                   ("Dry run" if mode == "dry_run" else "Sync") + " finished" in shown]
            got[f"runs_after_{mode}"] = len(browser.request("GET", runs).json()["runs"])
        # The same session without Django's token on a JSON route: Django's check applies there.
        json_sync = browser.request("POST", reverse("ambac_hubspot:hubspot-sync"), body=b"{}",
                                    headers={"Content-Type": "application/json"})
        got["POST JSON sync without Django's token"] = [json_sync.status, json_sync.content_type]
        got["runs_after_json"] = len(browser.request("GET", runs).json()["runs"])
        other = _Browser(base)
        got["stranger_login"] = other.sign_in(stranger.email, stranger_password)
        refused = other.request("GET", prefix)
        got["GET / without view_integrations"] = [refused.status, refused.content_type,
                                                  "view_integrations" in refused.text]
        return got

    def disable(self, tenant_id: str) -> dict[str, Any]:
        """Switch the tenant's integration off as the Integrations page does (saving the row)."""
        from integrations.models import IntegrationConfig

        row = IntegrationConfig.objects.get(tenant_id=tenant_id, provider="hubspot")
        row.is_enabled = False
        row.save()
        return {"is_enabled": row.is_enabled}

    def close(self) -> None:
        self._stack.close()


def _user(tenant_id: str, label: str) -> tuple[Any, str]:
    """A new internal user of the tenant with a password: the row and the password."""
    from Tracker.models import User

    name = f"smoke-{label}-{uuid.uuid4().hex[:12]}"
    password = uuid.uuid4().hex
    row = User.objects.create_user(username=name, email=f"{name}@smoke.example", password=password,
                                   tenant_id=tenant_id, user_type="INTERNAL")
    return row, password


def _form_token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has a form with its token"
    return found.group(1)


class _Answer(NamedTuple):
    status: int
    headers: dict[str, str]
    text: str

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0]

    def json(self) -> Any:
        return json.loads(self.text)


class _Browser:
    """A browser over real HTTP: it keeps its cookies and sends an ``Origin`` with unsafe requests
    (its own unless told otherwise); it follows no redirect."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None, body: bytes = b"",
                headers: dict[str, str] | None = None, origin: str | None = None) -> _Answer:
        import http.client
        from http.cookies import SimpleCookie
        from urllib.parse import urlencode, urlsplit

        sent = {"Accept": "text/html,application/json", **(headers or {})}
        if form is not None:
            body = urlencode(form).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        if method != "GET":
            sent["Origin"] = origin or self.base
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        where = urlsplit(self.base)
        connection = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=120)
        try:
            connection.request(method, path, body=body or None, headers=sent)
            response = connection.getresponse()
            text = response.read().decode("utf-8", "replace")
            for line in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(line).items():
                    self.cookies[name] = morsel.value
            return _Answer(response.status, dict(response.headers.items()), text)
        finally:
            connection.close()

    def sign_in(self, email: str, password: str) -> list[Any]:
        """The host's own browser login: its CSRF cookie first, then the login with that token.
        Answers the login's status and whether a session cookie came back."""
        from django.conf import settings

        self.request("GET", "/api/csrf/")
        token = self.cookies.get(settings.CSRF_COOKIE_NAME, "")
        answer = self.request("POST", "/auth/login/", body=json.dumps({"email": email, "password": password}).encode(),
                              headers={"Content-Type": "application/json", "X-CSRFToken": token})
        return [answer.status, settings.SESSION_COOKIE_NAME in self.cookies]


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
