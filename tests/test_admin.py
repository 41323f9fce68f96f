"""The admin API and its JSON routes: permissions on every operation, the status view, validation."""

from __future__ import annotations

import contextlib
import inspect
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from ambac_hubspot_plugin.admin import Admin, PermissionDeniedError
from ambac_hubspot_plugin.errors import ConfigError, DealNotFoundError, HubSpotIntegrationError
from ambac_hubspot_plugin.host import MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS, HttpRequest
from ambac_hubspot_plugin.sandbox import Sandbox
from ambac_hubspot_plugin.settings import parse_settings

from ._snapshot import store_rows
from ._world import EVERY_FIELD, PluginWorld, open_world, plugin_settings

PUBLIC = "https://tracker.example.com"


@attrs.define
class World(PluginWorld):
    """The plugin world with three users: an admin, a viewer and one with no rights."""

    admin_user: Any = None
    viewer: Any = None
    stranger: Any = None

    @property
    def admin(self) -> Admin:
        return Admin(self.runtime, self.host.services(self.tenant))

    def http(self, method: str, path: str, user=None, body: Any = None, raw: bytes | None = None):
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        response = self.host.handle_http(method, f"/integrations/hubspot/{path}", headers={},
                                         body=data, user=user, public_base_url=PUBLIC)
        return response.status, json.loads(response.body or b"null")


def world_settings(hubspot: Sandbox, **extra: Any) -> dict:
    """Settings pointing the plugin at the sandbox, with a webhook secret and public URL."""
    return plugin_settings(hubspot, webhook_client_secret=hubspot.client_secret, public_base_url=PUBLIC, **extra)


@contextlib.contextmanager
def _admin_world(tmp_path: Path, capabilities: Any) -> Iterator[World]:
    """Sandbox + reference host + enabled plugin; an admin, a viewer and a user with no rights."""
    with open_world(tmp_path, World, settings=world_settings, capabilities=capabilities) as world:
        host, tenant = world.host, world.tenant
        world.admin_user = host.create_user(tenant, "admin@acme.example")
        host.grant(world.admin_user, MANAGE_INTEGRATIONS)
        host.grant(world.admin_user, VIEW_INTEGRATIONS)
        world.viewer = host.create_user(tenant, "viewer@acme.example")
        host.grant(world.viewer, VIEW_INTEGRATIONS)
        world.stranger = host.create_user(tenant, "stranger@acme.example")
        yield world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """The admin world on a host keeping every order and company field."""
    with _admin_world(tmp_path, EVERY_FIELD) as world:
        yield world


@pytest.fixture
def real_world(tmp_path: Path) -> Iterator[World]:
    """The admin world on a host with Ambac Tracker's fields (no company website or phone)."""
    with _admin_world(tmp_path, None) as world:
        yield world


# ---- permissions through the Python API --------------------------------------------------------

Op = Callable[[Admin, Any], object]

MANAGE_OPS: dict[str, Op] = {
    "enable": lambda a, u: a.enable(u, {}),
    "disable": lambda a, u: a.disable(u),
    "change_settings": lambda a, u: a.change_settings(u, {}),
    "check_settings": lambda a, u: a.check_settings(u, {}),
    "test_connection": lambda a, u: a.test_connection(u),
    "run_sync": lambda a, u: a.run_sync(u),
    "replay": lambda a, u: a.replay(u, 1),
    "replay_all": lambda a, u: a.replay_all(u),
    "prune": lambda a, u: a.prune(u),
    "resolve_conflict": lambda a, u: a.resolve_conflict(u, 1, "hubspot"),
    "create_order_from_deal": lambda a, u: a.create_order_from_deal(u, "1"),
}
def _no_such_conflict_is_fine(admin: Admin, user: Any) -> object:
    """Read conflict 1, which the world does not have: past the permission check that is a
    ConfigError naming it, not a refusal."""
    if user is not None and admin.host.has_permission(user, VIEW_INTEGRATIONS):
        with pytest.raises(ConfigError, match="no conflict 1"):
            admin.conflict(user, 1)
        return None
    return admin.conflict(user, 1)


def _no_such_company_is_fine(admin: Admin, user: Any) -> object:
    """Read company 'nope', which the tenant does not have: past the permission check that is
    a ConfigError naming it, not a refusal."""
    if user is not None and admin.host.has_permission(user, VIEW_INTEGRATIONS):
        with pytest.raises(ConfigError, match="no company nope"):
            admin.company(user, "nope")
        return None
    return admin.company(user, "nope")


def _no_such_deal_is_fine(admin: Admin, user: Any) -> object:
    """Preview deal 1, which HubSpot does not have: past the permission check that is a
    DealNotFoundError naming it, not a refusal."""
    if user is not None and admin.host.has_permission(user, VIEW_INTEGRATIONS):
        with pytest.raises(DealNotFoundError, match="no deal 1"):
            admin.preview_order(user, "1")
        return None
    return admin.preview_order(user, "1")


VIEW_OPS: dict[str, Op] = {
    "preview_order": _no_such_deal_is_fine,
    "company": _no_such_company_is_fine,
    "companies": lambda a, u: a.companies(u),
    "conflict": _no_such_conflict_is_fine,
    "settings": lambda a, u: a.settings(u),
    "status": lambda a, u: a.status(u),
    "log": lambda a, u: a.log(u),
    "history": lambda a, u: a.history(u),
    "dead_letters": lambda a, u: a.dead_letters(u),
    "conflicts": lambda a, u: a.conflicts(u),
}


def _state(world: World) -> tuple[Any, ...]:
    """Every store row (log, last connection check, runs, jobs), the saved settings and the
    number of requests HubSpot received."""
    return (store_rows(world.store.engine), world.host.plugin_settings(world.tenant, "hubspot"),
            len(world.hubspot.requests))


def test_every_public_admin_method_is_in_a_permission_table():
    """A public Admin method added without an entry above (and so without a refusal test) fails."""
    public = {name for name, member in inspect.getmembers(Admin, callable)
              if not name.startswith("_")} - {"require"}
    assert public == set(MANAGE_OPS) | set(VIEW_OPS)


@pytest.mark.parametrize("name", sorted(MANAGE_OPS))
def test_manage_operations_refuse_viewers_strangers_and_nobody(world, name):
    """Each manage operation raises PermissionDeniedError naming manage_integrations, and leaves
    the store, the saved settings and HubSpot untouched."""
    op = MANAGE_OPS[name]
    before = _state(world)
    for user in (world.viewer, world.stranger, None):
        with pytest.raises(PermissionDeniedError) as info:
            op(world.admin, user)
        assert info.value.permission == MANAGE_INTEGRATIONS
        assert "manage_integrations" in str(info.value)
        assert _state(world) == before, user
    assert world.runtime.is_enabled(world.tenant), "a refused disable must not disable"
    assert world.store.recent_runs(world.tenant) == [], "a refused sync must not run"


@pytest.mark.parametrize("name", sorted(VIEW_OPS))
def test_view_operations_refuse_users_without_view_permission(world, name):
    """Each read operation raises PermissionDeniedError naming view_integrations and changes
    nothing; viewers pass, and reading changes nothing either (a preview reads HubSpot)."""
    op = VIEW_OPS[name]
    before = _state(world)
    for user in (world.stranger, None):
        with pytest.raises(PermissionDeniedError) as info:
            op(world.admin, user)
        assert info.value.permission == VIEW_INTEGRATIONS
        assert _state(world) == before, user
    op(world.admin, world.viewer)
    after = _state(world)
    assert after[:2] == before[:2]
    assert name == "preview_order" or after == before, "only a preview asks HubSpot"


def test_a_user_of_another_tenant_is_refused_even_with_the_permission(world):
    """Permissions are per tenant: an admin of tenant B cannot read tenant A's status."""
    other = world.host.create_tenant("Other")
    outsider = world.host.create_user(other, "admin@other.example")
    world.host.grant(outsider, VIEW_INTEGRATIONS)
    with pytest.raises(PermissionDeniedError):
        world.admin.status(outsider)


def test_permission_error_is_a_project_error_naming_user_and_operation(world):
    """PermissionDeniedError subclasses HubSpotIntegrationError and says who lacked what for what."""
    with pytest.raises(HubSpotIntegrationError) as info:
        world.admin.run_sync(world.viewer)
    assert isinstance(info.value, PermissionDeniedError)
    assert "Running a HubSpot sync" in str(info.value) and "viewer@acme.example" in str(info.value)


# ---- permissions through the routes -----------------------------------------------------------

ROUTES = [  # method, path, permission, body
    ("GET", "status", VIEW_INTEGRATIONS, None),
    ("GET", "settings", VIEW_INTEGRATIONS, None),
    ("PUT", "settings", MANAGE_INTEGRATIONS, {}),
    ("POST", "disable", MANAGE_INTEGRATIONS, None),
    ("POST", "check", MANAGE_INTEGRATIONS, None),
    ("POST", "sync", MANAGE_INTEGRATIONS, None),
    ("GET", "log", VIEW_INTEGRATIONS, None),
    ("GET", "history", VIEW_INTEGRATIONS, None),
    ("GET", "dead-letters", VIEW_INTEGRATIONS, None),
    ("POST", "dead-letters/replay", MANAGE_INTEGRATIONS, None),
    ("POST", "dead-letters/1/replay", MANAGE_INTEGRATIONS, None),
    ("POST", "prune", MANAGE_INTEGRATIONS, None),
    ("GET", "conflicts", VIEW_INTEGRATIONS, None),
    ("GET", "companies", VIEW_INTEGRATIONS, None),
    ("GET", "companies/1", VIEW_INTEGRATIONS, None),
    ("POST", "conflicts/1/resolve", MANAGE_INTEGRATIONS, {"choice": "hubspot"}),
    ("GET", "deals/1/preview", VIEW_INTEGRATIONS, None),
    ("POST", "deals/1/order", MANAGE_INTEGRATIONS, None),
]


def test_every_admin_route_declares_its_permission(world):
    """The routes the plugin lists carry exactly the permissions of the table above."""
    declared = {(r.method, r.path): r.permission for r in world.host.routes()}
    for method, path, permission, _body in ROUTES:
        template = "hubspot/" + path.replace("/1/", "/{job_id}/" if "dead" in path else
                                             "/{conflict_id}/" if "conflicts" in path else "/{deal_id}/")
        template = template.replace("companies/1", "companies/{company_id}")
        assert declared[(method, template)] == permission, (method, path)
    assert declared[("GET", "hubspot/crm-card/{tenant_id}")] is None


@pytest.mark.parametrize(("method", "path", "permission", "body"), ROUTES)
def test_routes_refuse_anonymous_and_users_without_the_permission(world, method, path, permission, body):
    """401 without a user, 403 for a user lacking the route's permission; nothing changes."""
    before = _state(world)
    assert world.http(method, path, None, body)[0] == 401
    assert world.http(method, path, world.stranger, body)[0] == 403
    if permission == MANAGE_INTEGRATIONS:
        assert world.http(method, path, world.viewer, body)[0] == 403
    assert world.runtime.is_enabled(world.tenant)
    assert _state(world) == before


@pytest.mark.parametrize(("method", "path", "permission", "body"), ROUTES)
def test_route_handlers_check_the_permission_themselves(world, method, path, permission, body):
    """Called directly (a host that forgot its check), each handler still answers 403."""
    (route,) = [r for r in world.host.routes()
                if r.method == method and r.path.count("/") == path.count("/") + 1
                and r.path.startswith("hubspot/" + path.split("/")[0])
                and (r.path.endswith(path.split("/")[-1]) or "{" in r.path.split("/")[-1])]
    params = {k: "1" for k in ("job_id", "conflict_id", "deal_id", "company_id") if "{" + k + "}" in route.path}
    request = HttpRequest(method, f"{PUBLIC}/x", {}, json.dumps(body).encode() if body else b"",
                          world.stranger, params, {})
    response = route.handler(request)
    assert response.status == 403
    assert json.loads(response.body)["permission"] == permission


# ---- the status view --------------------------------------------------------------------------


def test_status_shows_connection_records_runs_webhooks_queue_and_conflicts(world):
    """After a sync: in sync / excluded / failing counts, run durations, last check, webhook health."""
    world.hubspot.add_property("deals", "budget_text")
    world.host.change_settings(world.tenant, "hubspot", {**world.settings, "mapping": {
        "strategy": "configurable",
        "options": {"order": {"value": {"property": "budget_text", "transforms": ["decimal"]}}}}})
    for i in range(3):
        world.deal(dealname=f"Won {i}", budget_text="10")
    world.deal(stage="contractsent", dealname="Open")
    world.deal(dealname="Broken", budget_text="abc")
    result = world.admin.run_sync(world.admin_user)
    assert (result["created"], result["excluded"], result["failed"]) == (3, 1, 1)
    status = world.admin.status(world.viewer)
    assert status["records"]["in_sync"] == 3
    assert status["records"]["excluded"]["count"] == 1
    assert status["records"]["failing"] == 1
    assert status["connection"]["state"] == "ok"
    assert {c["name"] for c in status["connection"]["last_check"]["checks"]} >= {"token", "webhook_url"}
    run = status["recent_runs"][0]
    assert run["kind"] == "incremental" and run["duration_seconds"] >= 0 and run["created"] == 3
    assert status["webhooks"]["configured"] is True and status["webhooks"]["last_event_at"] is None
    assert status["conflicts"] == {"open": 0, "items": []}
    assert status["queue"] and status["dead_letters"]["count"] == 0
    assert status["alerts"] == []


def test_status_route_of_a_disabled_tenant_answers_409(world):
    """A tenant without the plugin enabled gets 409 with what to do, not a crash."""
    world.host.disable_plugin(world.tenant, "hubspot")
    status, body = world.http("GET", "status", world.viewer)
    assert status == 409 and "enable it" in body["message"]


# ---- log, history, dead letters, replay -------------------------------------------------------


def test_log_route_filters_by_level_and_record_and_pages(world):
    """level keeps that level and worse; record narrows to one record; next_before pages on."""
    store = world.store
    from ambac_hubspot_plugin.store import LogLevel

    for i in range(5):
        store.log(world.tenant, LogLevel.ERROR, "inbound.deal", f"bad {i}", record="deal:7")
    store.log(world.tenant, LogLevel.INFO, "inbound.deal", "fine", record="deal:8")
    status, page = world.http("GET", "log?level=error&limit=2", world.viewer)
    assert status == 200 and [e["message"] for e in page["entries"]] == ["bad 4", "bad 3"]
    status, page2 = world.http("GET", f"log?level=error&limit=2&before={page['next_before']}", world.viewer)
    assert [e["message"] for e in page2["entries"]] == ["bad 2", "bad 1"]
    _, only = world.http("GET", "log?record=deal:8", world.viewer)
    assert [e["message"] for e in only["entries"]] == ["fine"]


@pytest.mark.parametrize(("query", "field"), [
    ("limit=abc", "limit"), ("limit=0", "limit"), ("limit=501", "limit"), ("before=-1", "before"),
    ("level=loud", "level"), ("colour=red", "colour"),
])
def test_log_route_refuses_bad_queries_naming_the_parameter(world, query, field):
    """Bad numbers, out-of-range limits, unknown levels and unknown parameters are 400s naming the field."""
    status, body = world.http("GET", f"log?{query}", world.viewer)
    assert status == 400 and field in body["problems"]


def test_history_lists_runs_with_counts_and_duration(world):
    """Two syncs give two runs, newest first, each with counts and a duration."""
    world.deal()
    world.admin.run_sync(world.admin_user)
    world.admin.run_sync(world.admin_user)
    status, body = world.http("GET", "history?limit=5", world.viewer)
    assert status == 200
    assert [(r["created"], r["status"]) for r in body["runs"]] == [(0, "succeeded"), (1, "succeeded")]
    assert all(r["duration_seconds"] is not None for r in body["runs"])


def test_dead_letters_are_listed_and_replayed(world):
    """A job that failed its only attempt shows as a dead letter; replay puts it back in the queue."""
    store = world.store
    job_id = store.enqueue(world.tenant, "inbound.deal", {"deal_id": "1"}, max_attempts=1)
    (job,) = store.claim("test-worker", kinds=["inbound.deal"])
    store.fail(job.id, "test-worker", "mapping failed")
    status, body = world.http("GET", "dead-letters", world.viewer)
    assert status == 200 and [j["id"] for j in body["jobs"]] == [job_id]
    assert body["jobs"][0]["last_error"] == "mapping failed"
    status, body = world.http("POST", f"dead-letters/{job_id}/replay", world.admin_user)
    assert status == 200 and body["replayed"] is True
    assert store.get_job(job_id).state == "pending"
    status, body = world.http("POST", f"dead-letters/{job_id}/replay", world.admin_user)
    assert body["replayed"] is False and "not dead" in body["reason"]
    assert world.http("POST", "dead-letters/999999/replay", world.admin_user)[0] == 404
    assert world.http("POST", "dead-letters/abc/replay", world.admin_user)[0] == 400


# ---- sync, settings, orders from deals ---------------------------------------------------------


def test_sync_route_runs_now_or_queues(world):
    """wait=false queues an incremental sync; the default runs it and answers its counts."""
    world.deal()
    status, queued = world.http("POST", "sync", world.admin_user, {"wait": False})
    assert status == 200 and queued["queued"] is True and queued["job_id"]
    status, ran = world.http("POST", "sync", world.admin_user, {})
    assert status == 200 and ran["created"] == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"backfill": "yes"}, "backfill"), ({"since": "yesterday"}, "since"),
    ({"since": "2026-01-01T00:00:00"}, "since"), ({"speed": 1}, "speed"),
])
def test_sync_route_refuses_bad_bodies_naming_the_field(world, body, field):
    """Wrong types, unparsable or naive times and unknown fields are 400s naming the field."""
    status, answer = world.http("POST", "sync", world.admin_user, body)
    assert status == 400 and field in answer["problems"]


def test_sync_route_refuses_a_body_that_is_not_a_json_object(world):
    """Invalid JSON and a JSON list are both 400s about the body."""
    assert world.http("POST", "sync", world.admin_user, raw=b"{nope")[1]["problems"].keys() == {"body"}
    assert world.http("POST", "sync", world.admin_user, raw=b"[1]")[1]["problems"].keys() == {"body"}


def test_settings_read_back_redacted_and_bad_changes_name_each_field(world):
    """GET settings shows secrets as ***; PUT with bad values is a 400 naming every bad field."""
    status, shown = world.http("GET", "settings", world.viewer)
    assert status == 200 and shown["credentials"]["access_token"] == "***"
    assert shown["webhook_client_secret"] == "***"
    bad = {**world.settings, "portal_id": "abc", "sync_interval_seconds": 5}
    status, body = world.http("PUT", "settings", world.admin_user, bad)
    assert status == 400 and {"portal_id", "sync_interval_seconds"} <= set(body["problems"])
    status, body = world.http("PUT", "settings", world.admin_user, {**world.settings, "sync_interval_seconds": 120})
    assert status == 200 and body["sync_interval_seconds"] == 120
    assert world.runtime.tenant(world.tenant).settings.sync_interval_seconds == 120


def test_preview_then_create_order_from_a_deal(world):
    """Preview writes nothing and warns about a non-trigger stage; create makes the order once."""
    deal = world.deal(stage="contractsent", dealname="Brackets")
    status, preview = world.http("GET", f"deals/{deal}/preview", world.admin_user)
    assert status == 200 and preview["draft"]["name"] == "Brackets"
    assert any("not in a trigger stage" in w for w in preview["warnings"])
    assert world.host.services(world.tenant).list_orders() == []
    status, created = world.http("POST", f"deals/{deal}/order", world.admin_user,
                                 {"changes": {"name": "Brackets (rev B)", "estimated_completion": "2026-12-01"}})
    assert status == 200 and created["order"]["order_number"].startswith("ORD-")
    (order,) = world.host.services(world.tenant).list_orders()
    assert order.name == "Brackets (rev B)" and str(order.estimated_completion) == "2026-12-01"
    _, again = world.http("POST", f"deals/{deal}/order", world.admin_user, {})
    assert again["order"]["id"] == order.id and again["action"] == "unchanged"


def test_creating_with_the_previews_version_refuses_a_deal_changed_since(world):
    """``reviewed_version`` (the preview's ``version``) makes the creation refuse, 409, a deal
    changed since the review; without it the creation goes on as before; a bad one is a 400."""
    deal = world.deal(dealname="Brackets")
    _, preview = world.http("GET", f"deals/{deal}/preview", world.admin_user)
    time.sleep(0.002)  # HubSpot's modification times are in milliseconds
    world.hubspot.update_object("deals", deal, {"dealname": "Cancelled"})
    status, body = world.http("POST", f"deals/{deal}/order", world.admin_user,
                              {"reviewed_version": preview["version"]})
    assert (status, body["error"]) == (409, "changed") and "review it again" in body["message"]
    for bad in ({"reviewed_version": 7}, {"reviewed_version": "not a version!"}):
        assert world.http("POST", f"deals/{deal}/order", world.admin_user, bad)[0] == 400
    assert world.host.services(world.tenant).list_orders() == []
    _, fresh = world.http("GET", f"deals/{deal}/preview", world.admin_user)
    status, created = world.http("POST", f"deals/{deal}/order", world.admin_user,
                                 {"reviewed_version": fresh["version"]})
    assert status == 200 and created["action"] == "created"
    assert world.host.services(world.tenant).list_orders()[0].name == "Cancelled"


def test_the_previews_version_binds_which_company_and_contacts_the_deal_has(world):
    """Moving a deal from one linked company to another (no change to the deal itself, and
    the companies are linked, so not read again) still makes the reviewed version stale."""
    acme = world.hubspot.add_object("companies", {"name": "Acme", "domain": "acme.example"})
    bolt = world.hubspot.add_object("companies", {"name": "Bolt", "domain": "bolt.example"})
    for company in (acme, bolt):
        world.deal(dealname=f"Earlier {company}", companies=[company])
    world.runtime.run_sync(world.tenant)
    deal = world.deal(stage="contractsent", dealname="Reviewed", companies=[acme])
    _, preview = world.http("GET", f"deals/{deal}/preview", world.admin_user)
    world.hubspot.disassociate("deals", deal, "companies", acme)
    world.hubspot.associate("deals", deal, "companies", bolt, 5)
    status, body = world.http("POST", f"deals/{deal}/order", world.admin_user,
                              {"reviewed_version": preview["version"]})
    assert (status, body["error"]) == (409, "changed")


@pytest.mark.parametrize(("changes", "field"), [
    ({"order_status": "Shipped"}, "changes.order_status"),
    ({"estimated_completion": "next week"}, "changes.estimated_completion"),
    ({"value": "lots"}, "changes.value"), ({"colour": "red"}, "changes.colour"),
    ({"company_id": "7"}, "changes.company_id"),
])
def test_create_order_refuses_bad_changes_naming_the_field(world, changes, field):
    """Reviewer changes with bad values are 400s naming the field; nothing is created."""
    deal = world.deal()
    status, body = world.http("POST", f"deals/{deal}/order", world.admin_user, {"changes": changes})
    assert status == 400 and field in body["problems"]
    assert world.host.services(world.tenant).list_orders() == []


def test_an_order_the_host_refuses_is_a_400_naming_the_field_and_leaves_nothing_behind(world):
    """The host refuses a reviewer's name over its limit: a 400 naming the field (not a 502
    blaming HubSpot), and the company and contact made for the order are rolled back with it."""
    company = world.company(name="Second Co")
    contact = world.contact(email="two@acme.example", firstname="T")
    deal = world.deal(dealname="ok", companies=[company], contacts=[contact])
    status, body = world.http("POST", f"deals/{deal}/order", world.admin_user, {"changes": {"name": "q" * 300}})
    assert (status, body["error"], body["field"]) == (400, "refused", "name")
    services = world.host.services(world.tenant)
    assert services.list_orders() == [] and services.find_contacts_by_email("two@acme.example") == []
    assert "Second Co" not in [c.name for c in services.list_companies()]
    status, body = world.http("POST", f"deals/{deal}/order", world.admin_user, {"changes": {"name": "q" * 20}})
    assert status == 200 and body["action"] == "created"
    assert [c.name for c in services.list_companies()].count("Second Co") == 1


@pytest.mark.parametrize(("route", "method"), [("sync", "POST"), ("settings", "PUT")])
def test_a_json_body_nested_too_deep_is_a_400(world, route, method):
    status, body = world.http(method, route, world.admin_user, raw=b"[" * 5000)
    assert status == 400 and "body" in body["problems"]


def test_a_companys_values_kept_by_the_plugin_show_in_the_preview_and_the_company_views(real_world):
    """The host keeps no domain, phone or address: the deal preview, the company route and the
    companies list show the HubSpot company's values the plugin keeps for it."""
    company = real_world.company(name="Acme Inc", domain="https://www.acme.example/", phone="+1 555 0100",
                            city="Springfield")
    deal = real_world.deal(companies=[company], dealname="Brackets")
    status, preview = real_world.http("GET", f"deals/{deal}/preview", real_world.admin_user)
    assert status == 200
    assert (preview["company_kept"]["website"], preview["company_kept"]["phone"]) == ("acme.example", "+1 555 0100")
    assert preview["company_kept"]["address"]["city"] == "Springfield"
    assert "name" not in preview["company_kept"], "the host keeps the name"
    real_world.sync()
    host_id = real_world.order_for(deal).company_id
    status, shown = real_world.http("GET", f"companies/{host_id}", real_world.viewer)
    assert status == 200 and (shown["id"], shown["name"], shown["hubspot_id"]) == (host_id, "Acme Inc", company)
    assert shown["kept"]["website"] == "acme.example" and shown["kept"]["phone"] == "+1 555 0100"
    status, listed = real_world.http("GET", "companies?limit=1", real_world.viewer)
    assert status == 200 and listed["companies"] == [shown] and listed["next_after"] is not None
    _, rest = real_world.http("GET", f"companies?after={listed['next_after']}", real_world.viewer)
    assert rest == {"companies": [], "next_after": None}
    _, again = real_world.http("GET", f"deals/{deal}/preview", real_world.admin_user)
    assert again["company_kept"] == shown["kept"], "a linked company's values come from its link"
    assert real_world.http("GET", "companies/nope", real_world.viewer)[0] == 400
    assert real_world.http("GET", "companies/..%2F", real_world.viewer)[0] == 400


def test_preview_of_an_unknown_deal_is_a_clear_error(world):
    """A deal HubSpot does not have is a 502 naming the deal, not a 500; a non-numeric id is a 400."""
    status, body = world.http("GET", "deals/99999999/preview", world.admin_user)
    assert status == 502 and "99999999" in body["message"]
    assert world.http("GET", "deals/abc/preview", world.admin_user)[0] == 400


def test_conflicts_route_lists_and_resolve_refuses_unknown_ids(world):
    """No conflicts yet: an empty list; resolving an unknown id is a 400 naming it; bad choice a 400."""
    status, body = world.http("GET", "conflicts?status=all", world.viewer)
    assert status == 200 and body == {"conflicts": []}
    status, body = world.http("POST", "conflicts/42/resolve", world.admin_user, {"choice": "hubspot"})
    assert status == 400 and "42" in body["message"]
    status, body = world.http("POST", "conflicts/42/resolve", world.admin_user, {"choice": "mine"})
    assert status == 400 and "choice" in body["problems"]


def test_disable_route_stops_the_tenant_and_keeps_data(world):
    """POST disable switches the runtime off for the tenant; the store keeps its log."""
    store = world.store
    status, body = world.http("POST", "disable", world.admin_user)
    assert status == 200 and body == {"enabled": False}
    assert not world.runtime.is_enabled(world.tenant)
    assert store.read_log(world.tenant, what="plugin.disabled").entries


# ---- settings validation: each kind of bad value ----------------------------------------------

BASE = {"portal_id": "123", "credentials": {"kind": "private_app", "access_token": "pat-na1-x"}}


@pytest.mark.parametrize(("change", "path", "words"), [
    ({"portal_id": None}, "portal_id", "must be text"),
    ({"portal_id": "12ab"}, "portal_id", "digits only"),
    ({"surprise": 1}, "settings", "unknown field"),
    ({"account_tier": "platinum"}, "account_tier", "'enterprise'"),
    ({"directions": {"orders": "sideways"}}, "directions.orders", "'both'"),
    ({"stage_status_map": {"closedwon": "Shipped"}}, "stage_status_map.closedwon", "'IN_PROGRESS'"),
    ({"api_base_url": "ftp://x"}, "api_base_url", "HubSpot's API"),
    ({"public_base_url": "https://t.example.com/"}, "public_base_url", "end with '/'"),
    ({"portal_timezone": "Mars/Olympus"}, "portal_timezone", "IANA"),
    ({"sync_interval_seconds": 10}, "sync_interval_seconds", "60"),
    ({"sync_interval_seconds": "often"}, "sync_interval_seconds", "whole number"),
    ({"sync_interval_seconds": 90.5}, "sync_interval_seconds", "whole number"),
    ({"alerts": {"failed_runs": 0}}, "alerts.failed_runs", "1"),
    ({"alerts": {"webhook_silence_minutes": 1}}, "alerts.webhook_silence_minutes", "5"),
    ({"credentials": {"kind": "private_app", "access_token": " "}}, "credentials.access_token", "empty"),
    ({"credentials": {"kind": "password", "access_token": "x"}}, "credentials.kind", "'oauth'"),
    ({"credentials": {"kind": "oauth", "client_id": "c", "client_secret": "s"}},
     "credentials.refresh_token", "required"),
    ({"hapikey": "abc"}, "hapikey", "retired"),
    ({"trigger_stages": {"default": "closedwon"}}, "trigger_stages.default", "list"),
    ({"run_background_worker": "maybe"}, "run_background_worker", "true or false"),
])
def test_settings_validation_names_the_field_and_what_is_allowed(change, path, words):
    """Each kind of bad value raises one ConfigError whose problems name the path and the rule."""
    with pytest.raises(ConfigError) as info:
        parse_settings({**BASE, **change})
    problems = info.value.problems
    assert path in problems, problems
    assert words.lower() in problems[path].lower(), problems[path]
    assert "pat-na1-x" not in str(info.value)


def test_settings_validation_reports_every_bad_field_at_once():
    """Three bad fields give three named problems in one error."""
    with pytest.raises(ConfigError) as info:
        parse_settings({**BASE, "portal_id": "x", "account_tier": "gold", "sync_overlap_seconds": -1})
    assert {"portal_id", "account_tier", "sync_overlap_seconds"} <= set(info.value.problems)


def test_settings_that_are_not_a_mapping_are_refused():
    """A list instead of an object is refused naming 'settings'."""
    with pytest.raises(ConfigError) as info:
        parse_settings(["portal_id"])  # type: ignore[arg-type]  # the point of the test
    assert "settings" in info.value.problems
