"""The settings page over HTTP: the form drawn from the manifest's JSON Schema, saving (with
errors beside their fields, nothing saved until all are right, secrets never shown, an empty
secret kept), the host keeping what was saved, permissions, CSRF, and the connection test."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from ambac_hubspot_plugin.admin import Admin
from ambac_hubspot_plugin.plugin import ambac_plugin_manifest

from ._pages_world import PAGES, PagesWorld, open_pages_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PagesWorld]:
    """The pages' world, served over loopback."""
    with open_pages_world(tmp_path) as world:
        yield world


class _Controls(HTMLParser):
    """The named controls of a page's settings form, as a browser would read and send them."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: dict[str, dict[str, Any]] = {}
        self.labels: set[str] = set()
        self._select: str | None = None
        self._textarea: str | None = None
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self._in_form = a.get("action", "").endswith("/settings")
        if not self._in_form:
            return
        if tag == "label" and a.get("for"):
            self.labels.add(str(a["for"]))
        name = a.get("name")
        if tag in ("input", "select", "textarea") and name:
            self.controls[name] = {"tag": tag, **a, "value": a.get("value") or "", "options": []}
            self._select = name if tag == "select" else None
            self._textarea = name if tag == "textarea" else None
        if tag == "option" and self._select:
            self.controls[self._select]["options"].append(a.get("value"))
            if "selected" in a:
                self.controls[self._select]["value"] = a.get("value")

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.controls[self._textarea]["value"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        if tag in ("textarea", "select"):
            self._textarea = self._select = None


def _controls(page: str) -> _Controls:
    parser = _Controls()
    parser.feed(page)
    return parser


def _form(page: str, **changes: str) -> dict[str, str]:
    """What submitting the settings form sends, after typing ``changes`` (a path with ``__``
    for its dots), as a browser: unchecked boxes are left out."""
    sent = {name: c["value"] for name, c in _controls(page).controls.items()
            if not (c.get("type") == "checkbox" and "checked" not in c)}
    return {**sent, **{name.replace("__", "."): value for name, value in changes.items()}}


def _schema_leaves(schema: Mapping[str, Any], prefix: str = "") -> dict[str, Mapping[str, Any]]:
    """Every settings path the schema describes, with its schema (a union's options merged)."""
    leaves: dict[str, Mapping[str, Any]] = {}
    for name, prop in schema["properties"].items():
        options = [o for o in prop.get("anyOf", [prop]) if o.get("type") != "null"]
        objects = [o for o in options if "properties" in o]
        for option in objects:
            leaves.update(_schema_leaves(option, f"{prefix}{name}."))
        if not objects:
            leaves[prefix + name] = options[0] if len(options) == 1 else prop
    return leaves


def _field_error(page: str, path: str) -> str:
    """The error shown beside a field, checking that the field points at it (aria-describedby)."""
    field_id = "field-" + path.replace(".", "-")
    found = re.search(rf'<p id="{field_id}-error" class="field-error">([^<]*)</p>', page)
    assert found, f"no error beside {path}"
    control = re.search(rf'<(?:input|select|textarea)\b[^>]*\bid="{field_id}"[^>]*>', page)
    assert control and f'{field_id}-error' in control.group(0) and 'aria-invalid="true"' in control.group(0)
    return html.unescape(found.group(1))


def _secrets(world: PagesWorld) -> list[str]:
    return [world.hubspot.access_token, world.hubspot.client_secret]


def _last_check(world: PagesWorld) -> Any:
    """The last connection test kept for the status view (None: never tested)."""
    return Admin(world.runtime, world.services).status(world.users["admin"])["connection"]["last_check"]


def _saved(world: PagesWorld) -> dict[str, Any]:
    """The settings the host keeps for the plugin (what its next start gets)."""
    saved = world.host.plugin_settings(world.tenant, "hubspot")
    assert saved is not None
    return saved


# ---- the form --------------------------------------------------------------------------------


def test_every_field_of_the_manifests_schema_has_a_labelled_control_of_its_type(world):
    """Each settings path of the manifest's JSON Schema is a labelled control: booleans are boxes,
    enums selects with every value, secrets password fields; nothing else is in the form."""
    leaves = _schema_leaves(ambac_plugin_manifest().settings_schema)
    assert {"portal_id", "credentials.kind", "credentials.refresh_token", "alerts.failed_runs"} <= set(leaves)
    parsed = _controls(world.get("/settings", "admin").text)
    assert set(parsed.controls) - {"csrf_token"} == set(leaves)
    for path, schema in leaves.items():
        control = parsed.controls[path]
        assert control["id"] in parsed.labels, f"{path} has no label"
        if schema.get("writeOnly"):
            assert control["type"] == "password" and control["value"] == "", path
        elif schema.get("type") == "boolean":
            assert control["type"] == "checkbox", path
        elif "enum" in schema and path != "credentials.kind":
            assert set(schema["enum"]) <= set(control["options"]), path


def test_the_form_shows_the_current_settings_and_whether_each_secret_is_set(world):
    """Current values fill the form; secrets show only "Set" or "Not set", never themselves."""
    page = world.get("/settings", "admin").text
    values = {name: c["value"] for name, c in _controls(page).controls.items()}
    assert values["portal_id"] == str(world.hubspot.portal_id)
    assert values["conflicts.default"] == "manual" and values["credentials.kind"] == "private_app"
    assert values["public_base_url"] == "https://tracker.example.com"
    assert values["sync_interval_seconds"] == "900"
    assert re.search(r'id="field-webhook_client_secret-hint" class="hint">Set: leave empty', page)
    assert re.search(r'id="field-credentials-client_secret-hint" class="hint">[^<]*Not set', page)
    assert not [s for s in _secrets(world) if s in page]


# ---- saving ----------------------------------------------------------------------------------


def test_a_save_with_errors_saves_nothing_then_the_fixed_form_saves_and_lasts(world):
    """Bad fields: 400, each error beside its field, typed values kept but no secret, nothing
    saved; fixed: 303, applied, kept by the host, the empty secret kept and the typed one new."""
    before_runtime = world.runtime.tenant(world.tenant).settings
    before_saved = _saved(world)
    new_secret = "typed-webhook-secret-0123456789"
    form = _form(world.get("/settings", "admin").text, sync_interval_seconds="10", portal_timezone="Mars/Base",
                 alerts__failed_runs="7", mapping__options="{not json", webhook_client_secret=new_secret)
    refused = world.post("/settings", "admin", form)
    assert refused.status == 400
    assert "at least 60" in _field_error(refused.text, "sync_interval_seconds")
    assert "Mars/Base" in _field_error(refused.text, "portal_timezone")
    assert _field_error(refused.text, "mapping.options")
    assert "Nothing was saved: 3 problems" in refused.text
    kept = {name: c["value"] for name, c in _controls(refused.text).controls.items()}
    assert (kept["alerts.failed_runs"], kept["portal_timezone"]) == ("7", "Mars/Base")
    assert not [s for s in [*_secrets(world), new_secret] if s in refused.text]
    assert world.runtime.tenant(world.tenant).settings == before_runtime
    assert _saved(world) == before_saved

    fixed = _form(refused.text, sync_interval_seconds="600", portal_timezone="America/Chicago",
                  mapping__options="", webhook_client_secret=new_secret)
    answer = world.post("/settings", "admin", fixed)
    assert answer.status == 303 and answer.headers["location"] == f"{PAGES}/settings?saved=1#main"
    settings = world.runtime.tenant(world.tenant).settings
    assert (settings.sync_interval_seconds, settings.portal_timezone, settings.alerts.failed_runs) == (
        600, "America/Chicago", 7)
    saved = _saved(world)
    assert (saved["sync_interval_seconds"], saved["alerts"]["failed_runs"]) == (600, 7)
    assert saved["credentials"]["access_token"] == world.hubspot.access_token  # left empty: kept
    assert saved["webhook_client_secret"] == new_secret
    shown = world.get("/settings?saved=1", "admin").text
    assert "Settings saved" in shown and new_secret not in shown


@pytest.mark.parametrize("typed", ["--5", "\u00b2", "\u0663", "9" * 19])
def test_a_whole_number_field_typed_wrong_is_an_error_beside_it(world, typed):
    """Not a whole number as people type one (ASCII digits, one sign, 64 bits): a 400 with the
    error beside the field, never a 500."""
    before = _saved(world)
    refused = world.post("/settings", "admin", _form(world.get("/settings", "admin").text,
                                                     sync_interval_seconds=typed))
    assert refused.status == 400 and _field_error(refused.text, "sync_interval_seconds")
    assert _saved(world) == before


def test_a_form_over_the_size_limit_says_so_and_changes_nothing(world):
    before = _saved(world)
    form = _form(world.get("/settings", "admin").text, mapping__options='{"x": "' + "y" * 70_000 + '"}')
    answer = world.post("/settings", "admin", form)
    assert answer.status == 413 and "too large" in answer.text and "expired" not in answer.text
    assert _saved(world) == before


def test_a_settings_change_through_the_admin_api_is_kept_by_the_host(world):
    """Admin.change_settings (what PUT hubspot/settings calls) saves through the host's services,
    so the host starts the tenant with the change, not the settings it had before."""
    admin = Admin(world.runtime, world.services)
    assert admin.settings_saved_by_host
    current = admin.settings(world.users["admin"])
    admin.change_settings(world.users["admin"], {**current, "account_tier": "starter"})
    saved = _saved(world)
    assert saved["account_tier"] == "starter"
    assert saved["credentials"]["access_token"] == world.hubspot.access_token


class HostDatabaseDown(Exception):
    pass


def test_a_change_the_host_fails_to_save_is_not_applied_either(world, monkeypatch):
    """Saving the settings fails in the host (its database is down): the error is raised, and
    this process goes on with the settings the host still has, secrets and all, so a restart
    changes nothing."""
    admin = Admin(world.runtime, world.services)
    current = admin.settings(world.users["admin"])
    before = _saved(world)

    def refuse(*_args: Any) -> None:
        raise HostDatabaseDown("the host's database is down")

    monkeypatch.setattr(type(world.services), "save_plugin_settings", refuse)
    with pytest.raises(HostDatabaseDown):
        admin.change_settings(world.users["admin"], {**current, "account_tier": "starter"})

    running = world.runtime.tenant(world.tenant).settings
    assert running.account_tier == "professional"
    assert running.credentials.access_token.reveal() == world.hubspot.access_token  # not "***"
    assert _saved(world) == before
    monkeypatch.undo()
    admin.change_settings(world.users["admin"], {**current, "account_tier": "starter"})
    assert world.runtime.tenant(world.tenant).settings.account_tier == _saved(world)["account_tier"] == "starter"


def test_when_going_back_fails_too_the_hosts_error_is_raised_and_the_other_logged(world, monkeypatch, caplog):
    """The host cannot save, and applying its settings again fails as well (say the store went
    away meanwhile): the host's error is the one raised; the second is logged, first line only,
    without a secret, saying this process runs with unsaved settings."""
    admin = Admin(world.runtime, world.services)
    current = admin.settings(world.users["admin"])
    token = world.hubspot.access_token
    settings_changed = type(world.runtime).settings_changed
    calls: list[Mapping[str, Any]] = []

    def refuse(*_args: Any) -> None:
        raise HostDatabaseDown("the host's database is down")

    def apply(self: Any, host: Any, tenant_id: str, raw: Mapping[str, Any]) -> None:
        calls.append(raw)
        if len(calls) > 1:
            raise RuntimeError(f"store unreachable with token {token}\nsecond line")
        settings_changed(self, host, tenant_id, raw)

    monkeypatch.setattr(type(world.services), "save_plugin_settings", refuse)
    monkeypatch.setattr(type(world.runtime), "settings_changed", apply)
    with caplog.at_level("ERROR", logger="ambac_hubspot_plugin.admin"), pytest.raises(HostDatabaseDown):
        admin.change_settings(world.users["admin"], {**current, "account_tier": "starter"})

    assert [raw["account_tier"] for raw in calls] == ["starter", "professional"]
    (record,) = [r for r in caplog.records if r.name == "ambac_hubspot_plugin.admin"]
    message = record.getMessage()
    assert "unsaved settings" in message and str(world.tenant) in message
    assert "store unreachable with token ***" in message
    assert token not in message and "second line" not in message


def test_an_unknown_credential_kind_and_an_empty_required_field_are_named(world):
    """A kind the schema does not know and an empty portal id are each shown beside their field."""
    form = _form(world.get("/settings", "admin").text, credentials__kind="hapikey", portal_id="")
    answer = world.post("/settings", "admin", form)
    assert answer.status == 400
    assert "private_app" in _field_error(answer.text, "credentials.kind")
    assert _field_error(answer.text, "portal_id")
    assert world.runtime.tenant(world.tenant).settings.credentials.kind == "private_app"


# ---- permissions and CSRF --------------------------------------------------------------------


def test_a_viewer_sees_the_form_read_only_and_a_post_is_refused(world):
    """A viewer's controls and buttons are disabled, with no token; a POST changes nothing."""
    page = world.get("/settings", "viewer").text
    controls = _controls(page).controls
    assert all("disabled" in c for name, c in controls.items() if name != "csrf_token")
    assert controls["csrf_token"]["value"] == ""
    assert re.search(r'<button type="submit" disabled>Save settings</button>', page)
    assert re.search(r'<button type="submit" disabled class="secondary">Test the connection</button>', page)
    assert "needs the manage_integrations permission" in page
    before, tested = _saved(world), _last_check(world)
    form = _form(world.get("/settings", "admin").text, account_tier="starter")
    for who in ("viewer", "stranger"):
        assert world.post("/settings", who, form).status == 403
        assert world.post("/settings/test", who, {"csrf_token": form["csrf_token"]}).status == 403
    assert _saved(world) == before
    assert world.runtime.tenant(world.tenant).settings.account_tier == "professional"
    assert _last_check(world) == tested


def test_a_forged_or_missing_csrf_token_is_refused_and_changes_nothing(world):
    """Saving or testing without a valid token is a 403 page; the settings stay, nothing is tested."""
    before, tested = _saved(world), _last_check(world)
    form = _form(world.get("/settings", "admin").text, account_tier="starter")
    window, _, mac = form["csrf_token"].partition(".")
    for token in ("", f"{window}.{'0' * len(mac)}", f"{window}.\u00e9", None):  # \u00e9: not ASCII
        sent = {k: v for k, v in form.items() if k != "csrf_token"}
        if token is not None:
            sent["csrf_token"] = token
        for path, data in (("/settings", sent), ("/settings/test", {k: v for k, v in sent.items()
                                                                    if k == "csrf_token"})):
            answer = world.post(path, "admin", data)
            assert answer.status == 403 and "This form has expired" in answer.text
    assert world.runtime.tenant(world.tenant).settings.account_tier == "professional"
    assert _saved(world) == before
    assert _last_check(world) == tested


# ---- the connection test ---------------------------------------------------------------------


def test_the_connection_test_shows_each_check_and_the_fix_of_a_failing_one(world):
    """The button runs every check against the sandbox (303 back to them); a trigger stage HubSpot
    does not have fails its check, and the page shows that check's fix."""
    token = _form(world.get("/settings", "admin").text)["csrf_token"]
    answer = world.post("/settings/test", "admin", {"csrf_token": token})
    assert answer.status == 303 and answer.headers["location"] == f"{PAGES}/settings?tested=1#connection"
    page = world.get("/settings?tested=1", "admin").text
    rows = dict(re.findall(r'<tr><th scope="row">([a-z_]+)</th><td class="[a-z]*">(\w+)</td>', page))
    assert rows == {name: "Passed" for name in
                    ("token", "portal", "scopes", "pipelines", "properties", "webhook_secret",
                     "webhook_url")}
    assert "every check passed" in page and "Connection tested" in page

    world.host.change_settings(world.tenant, "hubspot", {**world.settings,
                                                         "trigger_stages": {"default": ["no-such-stage"]}})
    assert world.post("/settings/test", "admin", {"csrf_token": token}).status == 303
    page = world.get("/settings?tested=1", "admin").text
    failed = re.search(r'<tr><th scope="row">pipelines</th><td class="bad">Failed</td><td>([^<]*)</td>'
                       r'<td>([^<]*)</td></tr>', page)
    assert failed, "the pipelines check failed"
    (pipelines,) = [c for c in _last_check(world)["checks"] if c["name"] == "pipelines"]
    assert pipelines["fix"] and html.unescape(failed.group(2)) == pipelines["fix"]
    assert "a check failed" in page
    assert not [s for s in _secrets(world) if s in page]
