"""The plugin's routes as Django views under one ``include()``: the host's authentication and
permissions before the plugin runs; webhooks signed, CSRF-exempt and outside ``ATOMIC_REQUESTS``."""

from __future__ import annotations

import contextlib
import json
import sys
import time
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import HAVE_DJANGO, SKIP_REASON

if not HAVE_DJANGO:
    pytest.skip(SKIP_REASON, allow_module_level=True)

import attrs
import pluggy
from django.db import transaction
from django.test import Client
from django.urls import include, path
from integrations.models import IntegrationConfig
from Tracker.models import Tenant
from Tracker.utils.tenant_context import get_current_tenant_id

from ambac_hubspot_plugin import plugin as plugin_module
from ambac_hubspot_plugin._signatures import expected_v3
from ambac_hubspot_plugin.admin import Admin
from ambac_hubspot_plugin.contrib.django import plugin_manager
from ambac_hubspot_plugin.contrib.django.apps import build_plugin_manager
from ambac_hubspot_plugin.contrib.django.services import DjangoHostServices, user_record
from ambac_hubspot_plugin.contrib.django.views import plugin_urlpatterns
from ambac_hubspot_plugin.host import (
    MANAGE_INTEGRATIONS,
    VIEW_INTEGRATIONS,
    HttpRequest,
    HttpResponse,
    HttpRoute,
    hookimpl,
)
from ambac_hubspot_plugin.sandbox import Sandbox

from .._world import plugin_settings
from ..hostservices_conformance import EventRecorder
from ._double import DjangoHostUnderTest

PUBLIC = "https://tracker.example.com"
PREFIX = "/integrations/"
ROUTES = [route for routes in plugin_manager().hook.ambac_http_routes() for route in routes]
GUARDED = [route for route in ROUTES if route.permission is not None]
SIGNED = [route for route in ROUTES if route.permission is None]
# The host wraps each view in a transaction on every database with ATOMIC_REQUESTS (the double's
# PostgreSQL alias too, when it answers): the tests may use them all.
DB = pytest.mark.django_db(databases="__all__")
PARAMS = {"job_id": "1", "conflict_id": "1", "deal_id": "123", "company_id": str(uuid.uuid4())}


def _url(route: HttpRoute, tenant_id: str) -> str:
    return PREFIX + route.path.format(**PARAMS, tenant_id=tenant_id)


def _call(client: Client, route: HttpRoute, url: str, **extra: Any) -> Any:
    return client.generic(route.method, url, b"", content_type="application/json", **extra)


@attrs.define
class Echo:
    """A plugin whose routes hand back what they were given, and where they ran."""

    seen: list[tuple[HttpRequest, str | None, bool]] = attrs.field(factory=list)

    @hookimpl
    def ambac_http_routes(self) -> list[HttpRoute]:
        return [HttpRoute("echo-signed", "POST", "echo/{tenant_id}/raw", None, self.echo),
                HttpRoute("echo-user", "GET", "echo/user", VIEW_INTEGRATIONS, self.echo),
                HttpRoute("echo-user-post", "POST", "echo/user", VIEW_INTEGRATIONS, self.echo)]

    def echo(self, request: HttpRequest) -> HttpResponse:
        in_transaction = transaction.get_connection().in_atomic_block
        self.seen.append((request, get_current_tenant_id(), in_transaction))
        return HttpResponse(202, b"echoed", {"X-Echo": "yes"})


@attrs.define
class Mounted:
    """A host process: its plugin manager with the plugin enabled for a tenant, and its users."""

    pm: pluggy.PluginManager
    tenant: str
    hubspot: Sandbox
    echo: Echo
    admin: Any
    viewer: Any
    stranger: Any

    @property
    def runtime(self) -> Any:
        return self.pm.get_plugin(plugin_module.RUNTIME_NAME).runtime


def _user_row(host: DjangoHostUnderTest, services: DjangoHostServices, *permissions: str) -> Any:
    from Tracker.models import User

    return User.objects.get(pk=int(host.create_user(services, permissions).id))


@pytest.fixture
def mounted(tmp_path: Path, hs: Sandbox, settings: Any) -> Iterator[Mounted]:
    """A fresh plugin manager with the plugin enabled against the sandbox, its routes (and an
    echo plugin's) mounted under ``/integrations/`` as the host's URLconf."""
    with mount(tmp_path, hs, settings) as world:
        yield world


@contextlib.contextmanager
def mount(tmp_path: Path, hs: Sandbox, settings: Any, **extra: Any) -> Iterator[Mounted]:
    """The ``mounted`` world, the plugin enabled with the sandbox's settings and ``extra``."""
    tenant = str(Tenant.objects.create(name="Acme", slug=f"t-{uuid.uuid4().hex}").pk)
    pm = build_plugin_manager()
    echo = Echo()
    pm.register(echo)
    services = DjangoHostServices(tenant, data_dir=tmp_path)
    hubspot_settings = plugin_settings(hs, webhook_client_secret=hs.client_secret, public_base_url=PUBLIC,
                                       **extra)
    (report,) = [r for r in pm.hook.ambac_plugin_enabled(
        host=services, tenant_id=tenant, plugin_id=plugin_module.PLUGIN_ID, settings=hubspot_settings)
        if r is not None]
    assert report.ok, report
    urlconf = types.ModuleType(f"_routes_urlconf_{uuid.uuid4().hex}")
    urlconf.urlpatterns = [path("integrations/", include(plugin_urlpatterns(pm)))]  # type: ignore[attr-defined]
    sys.modules[urlconf.__name__] = urlconf
    settings.ROOT_URLCONF = urlconf.__name__
    host = DjangoHostUnderTest("default", tmp_path, EventRecorder())
    try:
        yield Mounted(pm, tenant, hs, echo,
                      admin=_user_row(host, services, MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS),
                      viewer=_user_row(host, services, VIEW_INTEGRATIONS),
                      stranger=_user_row(host, services))
    finally:
        pm.get_plugin(plugin_module.RUNTIME_NAME).runtime.close()
        del sys.modules[urlconf.__name__]


def _delivery(world: Mounted) -> bytes:
    """A webhook batch of the tenant's portal, with whitespace and non-ASCII text a
    re-serialised body would lose."""
    event = {"eventId": 1, "subscriptionId": 1, "portalId": world.hubspot.portal_id, "appId": 9,
             "occurredAt": int(time.time() * 1000), "subscriptionType": "deal.propertyChange",
             "attemptNumber": 0, "objectId": 4242, "changeSource": "CRM_UI",
             "propertyName": "dealname", "propertyValue": "Fräsen  \u2013 Los 7"}
    return ("[ " + json.dumps(event, ensure_ascii=False) + " ]\n").encode()


def _signed(world: Mounted, url: str, body: bytes, secret: str | None = None) -> dict[str, str]:
    stamp = str(int(time.time() * 1000))
    signature = expected_v3(secret or world.hubspot.client_secret, "POST", PUBLIC + url, body, stamp)
    return {"HTTP_X_HUBSPOT_SIGNATURE_V3": signature, "HTTP_X_HUBSPOT_REQUEST_TIMESTAMP": stamp}


# ---- the host's authentication and permissions, on the include() of the double's URLconf ------


def test_the_include_mounts_every_route_the_plugin_offers() -> None:
    """``include("ambac_hubspot_plugin.contrib.django.urls")`` serves each route's path, the
    webhook and CRM card among them."""
    from django.urls import Resolver404, resolve

    tenant = str(uuid.uuid4())
    for route in ROUTES:
        try:
            resolve(_url(route, tenant))
        except Resolver404:
            pytest.fail(f"{route.name} ({route.method} {route.path}) is not mounted")
    assert {"hubspot-webhooks", "hubspot-crm-card", "hubspot-status"} <= {r.name for r in ROUTES}


@DB
@pytest.mark.parametrize("route", GUARDED, ids=lambda r: r.name)
def test_every_admin_route_refuses_anonymous_and_unpermitted_users(route: HttpRoute, tmp_path: Path) -> None:
    """Anonymous: 401; a user of the tenant without the route's permission: 403 (whatever its
    other permission), as JSON or, for an admin page, as a page; a user holding it passes the
    host's check and reaches the plugin."""
    tenant = str(Tenant.objects.create(name="Acme", slug=f"t-{uuid.uuid4().hex}").pk)
    services = DjangoHostServices(tenant, data_dir=tmp_path)
    host = DjangoHostUnderTest("default", tmp_path, EventRecorder())
    other = VIEW_INTEGRATIONS if route.permission == MANAGE_INTEGRATIONS else MANAGE_INTEGRATIONS
    url = _url(route, tenant)

    assert _call(Client(), route, url).status_code == 401
    for permissions in ((), (other,)):
        client = Client()
        client.force_login(_user_row(host, services, *permissions))
        refused = _call(client, route, url)
        assert refused.status_code == 403, (permissions, refused.content)
        if route.refusal is not None:
            assert refused["Content-Type"].startswith("text/html")
            assert route.permission.encode() in refused.content
        else:
            assert route.permission in refused.json()["message"]
    client = Client()
    client.force_login(_user_row(host, services, route.permission or ""))
    # The plugin itself answers: the app's plugin manager has not enabled this tenant (the
    # admin pages say so as a page).
    answer = _call(client, route, url)
    if answer["Content-Type"].startswith("text/html"):
        assert answer.status_code == 409 and b"not enabled" in answer.content
    else:
        assert answer.json()["error"] == "not_enabled"


@DB
@pytest.mark.parametrize("route", SIGNED, ids=lambda r: r.name)
def test_signed_routes_refuse_requests_without_hubspots_signature(route: HttpRoute, mounted: Mounted) -> None:
    """The webhook and the CRM card, for an enabled tenant, refuse an unsigned request (and a
    signed-in admin gets no further without a signature)."""
    client = Client()
    client.force_login(mounted.admin)
    assert _call(Client(), route, _url(route, mounted.tenant)).status_code == 401
    assert _call(client, route, _url(route, mounted.tenant)).status_code == 401


# ---- served requests ----------------------------------------------------------------------


@DB
def test_a_permitted_user_gets_the_status_json_as_themselves(mounted: Mounted) -> None:
    """A viewer's GET of ``hubspot/status`` answers the plugin's status JSON of their tenant;
    the plugin saw the viewer as a host ``User`` and ran in the tenant's context."""
    client = Client()
    client.force_login(mounted.viewer)
    response = client.get(PREFIX + "hubspot/status")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    expected = Admin(mounted.runtime, DjangoHostServices(mounted.tenant)).status(user_record(mounted.viewer))
    assert response.json() == json.loads(json.dumps(expected, default=str))
    assert (response.json()["tenant_id"], response.json()["enabled"]) == (mounted.tenant, True)

    echoed = client.get(PREFIX + "echo/user", {"a": "1", "b": "two"})
    assert (echoed.status_code, echoed.content, echoed["X-Echo"]) == (202, b"echoed", "yes")
    request, tenant, _ = mounted.echo.seen[-1]
    assert request.user is not None
    assert (request.user.id, request.user.tenant_id) == (str(mounted.viewer.pk), mounted.tenant)
    assert (tenant, dict(request.query)) == (mounted.tenant, {"a": "1", "b": "two"})


@DB
def test_a_signed_webhook_is_stored_and_answered_200(mounted: Mounted) -> None:
    """A v3-signed delivery to ``hubspot/webhooks/<tenant>`` is in the plugin's inbox when the
    view answers 200; the same body signed with another secret is 401 and not stored."""
    url = f"{PREFIX}hubspot/webhooks/{mounted.tenant}"
    body = _delivery(mounted)
    store = mounted.runtime.store_for(mounted.tenant)

    forged = Client().post(url, body, content_type="application/json",
                           **_signed(mounted, url, body, secret="not-the-secret"))
    assert forged.status_code == 401
    assert store.webhook_backlog(mounted.tenant).batches == 0

    response = Client().post(url, body, content_type="application/json", **_signed(mounted, url, body))
    assert response.status_code == 200, response.content
    assert store.webhook_backlog(mounted.tenant).batches == 1


@DB
@pytest.mark.parametrize("spelling", [str.upper, lambda key: key.replace("-", ""),
                                      lambda key: "%7B" + key + "%7D"], ids=["capitals", "no-hyphens", "braces"])
def test_a_webhook_url_spelling_the_tenant_id_otherwise_reaches_the_running_tenant(
        mounted: Mounted, spelling: Any) -> None:
    """A delivery to the webhook URL with the tenant's UUID in another spelling (capitals, no
    hyphens, braces) is stored for that tenant, not answered 503 "could not start" (HubSpot
    would retry it for a day, then drop it)."""
    IntegrationConfig.objects.create(
        tenant_id=mounted.tenant, provider="hubspot", is_enabled=True, api_key=mounted.hubspot.access_token,
        webhook_secret=mounted.hubspot.client_secret,
        config={"portal_id": str(mounted.hubspot.portal_id), "api_base_url": mounted.hubspot.base_url,
                "local_sandbox": True, "run_background_worker": False})
    url = f"{PREFIX}hubspot/webhooks/{spelling(mounted.tenant)}"
    body = _delivery(mounted)
    response = Client().post(url, body, content_type="application/json", **_signed(mounted, url, body))
    assert response.status_code == 200, response.content
    assert mounted.runtime.store_for(mounted.tenant).webhook_backlog(mounted.tenant).batches == 1


@DB
def test_csrf_does_not_block_a_webhook(mounted: Mounted) -> None:
    """With CSRF checks enforced (as for a browser), HubSpot's POST without a token is served."""
    url = f"{PREFIX}hubspot/webhooks/{mounted.tenant}"
    body = _delivery(mounted)
    client = Client(enforce_csrf_checks=True)
    assert client.post(url, body, content_type="application/json", **_signed(mounted, url, body)).status_code == 200


@pytest.mark.django_db(transaction=True, databases="__all__")
def test_signed_routes_get_the_raw_body_outside_the_request_transaction(mounted: Mounted) -> None:
    """A route without a permission gets the body's bytes unchanged, the public URL, headers
    and path parameters, runs in the URL's tenant context and outside ``ATOMIC_REQUESTS``; a
    permission route runs outside it too (the plugin's host writes commit on their own)."""
    body = b'{ "a":1,\n  "b": "\xc3\xa4" }  \r\n'
    url = f"{PREFIX}echo/{mounted.tenant}/raw?x=1"
    response = Client(enforce_csrf_checks=True).post(url, body, content_type="text/plain",
                                                     HTTP_X_TRACE="t-1")
    assert response.status_code == 202
    request, tenant, in_transaction = mounted.echo.seen[-1]
    assert (request.body, request.method, request.user) == (body, "POST", None)
    assert request.url == f"http://testserver{url}"
    assert (request.headers["x-trace"], dict(request.path_params)) == ("t-1", {"tenant_id": mounted.tenant})
    assert (tenant, in_transaction) == (mounted.tenant, False)

    client = Client()
    client.force_login(mounted.viewer)
    assert client.get(PREFIX + "echo/user").status_code == 202
    assert mounted.echo.seen[-1][2] is False


def _csrf_client(token: str | None = None) -> tuple[Client, dict[str, str]]:
    """A browser-like client (CSRF enforced); with ``token``, its CSRF cookie and the header."""
    from django.conf import settings

    client = Client(enforce_csrf_checks=True)
    if token is None:
        return client, {}
    client.cookies[settings.CSRF_COOKIE_NAME] = token
    return client, {"HTTP_X_CSRFTOKEN": token}


@DB
def test_api_tokens_authenticate_and_sessions_are_held_to_csrf(mounted: Mounted) -> None:
    """The host's API authentication (DRF): a token works without a CSRF token; a session's
    POST without its CSRF token is refused before the plugin runs, and passes with it; a bad
    token is 401 with a challenge, a token of a user without the permission 403."""
    from django.utils.crypto import get_random_string
    from rest_framework.authtoken.models import Token

    url = PREFIX + "echo/user"
    admin_token = Token.objects.create(user=mounted.admin).key
    stranger_token = Token.objects.create(user=mounted.stranger).key
    seen = len(mounted.echo.seen)

    client, _ = _csrf_client()
    assert client.get(PREFIX + "hubspot/status", HTTP_AUTHORIZATION=f"Token {admin_token}").status_code == 200
    body = b'{ "a":1,\n  "b": "\xc3\xa4" }  '
    assert client.post(url, body, content_type="application/json",
                       HTTP_AUTHORIZATION=f"Token {admin_token}").status_code == 202
    assert mounted.echo.seen[-1][0].user.id == str(mounted.admin.pk)
    assert mounted.echo.seen[-1][0].body == body, "the raw bytes, untouched by the authentication"
    bad = client.get(url, HTTP_AUTHORIZATION="Token not-a-token")
    assert (bad.status_code, bad["WWW-Authenticate"]) == (401, "Token")
    assert client.get(url, HTTP_AUTHORIZATION=f"Token {stranger_token}").status_code == 403
    assert len(mounted.echo.seen) == seen + 1

    client.force_login(mounted.viewer)
    refused = client.post(url, b"{}", content_type="application/json")
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    assert len(mounted.echo.seen) == seen + 1, "the plugin never ran"
    csrf = get_random_string(32)
    client, header = _csrf_client(csrf)
    client.force_login(mounted.viewer)
    assert client.post(url, b"{}", content_type="application/json", **header).status_code == 202


@DB
def test_without_drf_the_session_and_djangos_csrf_check_apply(
        mounted: Mounted, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host without DRF: ``request.user`` from its middleware, and Django's CSRF check on an
    unsafe method (the guarded views are CSRF-exempt only so that tokens pass under DRF)."""
    from django.apps import apps
    from django.utils.crypto import get_random_string

    installed = apps.is_installed
    monkeypatch.setattr(apps, "is_installed", lambda name: name != "rest_framework" and installed(name))
    url = PREFIX + "echo/user"
    seen = len(mounted.echo.seen)
    client, _ = _csrf_client()
    assert client.get(url).status_code == 401
    client.force_login(mounted.viewer)
    refused = client.post(url, b"{}", content_type="application/json")
    assert (refused.status_code, refused.json()["error"]) == (403, "csrf_failed")
    assert len(mounted.echo.seen) == seen
    client, header = _csrf_client(get_random_string(32))
    client.force_login(mounted.viewer)
    assert client.post(url, b"{}", content_type="application/json", **header).status_code == 202
    assert client.get(url).status_code == 202, "a safe method needs no CSRF token"


@DB
def test_a_method_the_path_does_not_serve_is_405_naming_those_it_does(mounted: Mounted) -> None:
    """``DELETE hubspot/settings`` is 405 with ``Allow: GET, PUT``."""
    client = Client()
    client.force_login(mounted.admin)
    response = client.delete(PREFIX + "hubspot/settings")
    assert (response.status_code, response["Allow"]) == (405, "GET, PUT")


@DB
def test_a_user_of_no_tenant_is_refused(mounted: Mounted) -> None:
    """Platform staff without a tenant get 403 from an admin route: the integration is per tenant."""
    from Tracker.models import User

    staff = User.objects.create_user(username=f"staff-{uuid.uuid4().hex}", email="ops@host.example",
                                     is_staff=True)
    client = Client()
    client.force_login(staff)
    response = client.get(PREFIX + "hubspot/status")
    assert response.status_code == 403
    assert "no tenant" in response.json()["message"]
