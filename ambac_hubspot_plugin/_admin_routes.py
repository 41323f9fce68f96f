"""The admin API as JSON routes (``ambac_http_routes``), each declaring the permission it needs.

The host checks a route's permission before calling it; every handler checks it again through
:class:`~ambac_hubspot_plugin.admin.Admin` (a host that forgets must not open the door).
Requests are validated strictly: unknown query parameters, bad numbers, bodies that are not a
JSON object and bad field values are 400s that name the field and say what is allowed.

Enabling is not a route: the host's own settings page enables a plugin through
``ambac_plugin_enabled`` (and stores the settings); the Python API offers ``Admin.enable``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from .admin import Admin, AdminRuntime, PermissionDeniedError
from .errors import ConfigError, DealChangedError, HostRecordError, HubSpotIntegrationError, MappingError
from .host import MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS, HttpRequest, HttpResponse, HttpRoute

__all__ = ["admin_routes"]

Handler = Callable[[Admin, HttpRequest], Any]


class _BadRequest(Exception):
    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))


def _json(status: int, payload: Any) -> HttpResponse:
    return HttpResponse(status, json.dumps(payload, default=str).encode(),
                        {"Content-Type": "application/json"})


def _error(status: int, error: str, message: str, **extra: Any) -> HttpResponse:
    return _json(status, {"error": error, "message": message, **extra})


def _query(request: HttpRequest, allowed: Mapping[str, str]) -> dict[str, Any]:
    """Validate query parameters: ``allowed`` maps each name to ``int`` or ``str``."""
    unknown = sorted(set(request.query) - set(allowed))
    problems = {name: f"unknown query parameter; allowed: {sorted(allowed)}" for name in unknown}
    values: dict[str, Any] = {}
    for name, kind in allowed.items():
        raw = request.query.get(name)
        if raw is None or raw == "":
            continue
        if kind == "int":
            if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:  # isdigit() alone takes '²'
                problems[name] = f"{raw[:20]!r} is not a positive whole number"
                continue
            values[name] = int(raw)
        else:
            values[name] = raw
    if problems:
        raise _BadRequest(problems)
    return values


def _body(request: HttpRequest, allowed: Mapping[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """Parse a JSON object body; ``allowed`` maps each field to the Python type(s) it may hold."""
    if not request.body.strip():
        return {}
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise _BadRequest({"body": f"not valid JSON ({exc})"}) from exc
    if not isinstance(data, dict):
        raise _BadRequest({"body": "must be a JSON object"})
    problems: dict[str, str] = {}
    for name, value in data.items():
        if name not in allowed:
            problems[name] = f"unknown field; allowed: {sorted(allowed)}"
        elif value is not None and not isinstance(value, allowed[name]):
            problems[name] = f"must be {_type_name(allowed[name])}"
        elif isinstance(value, bool) and allowed[name] is int:
            problems[name] = "must be a whole number"
    if problems:
        raise _BadRequest(problems)
    return data


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {bool: "true or false", str: "a string", int: "a whole number", dict: "an object",
             list: "a list"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _int_param(request: HttpRequest, name: str) -> int:
    raw = request.path_params.get(name, "")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise _BadRequest({name: f"{raw[:20]!r} is not a positive whole number"})
    return int(raw)


def _deal_id(request: HttpRequest) -> str:
    raw = request.path_params.get("deal_id", "")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 20:
        raise _BadRequest({"deal_id": f"{raw[:24]!r} is not a HubSpot deal id (digits only)"})
    return raw


# ---- handlers -------------------------------------------------------------------------------


def _status(admin: Admin, request: HttpRequest) -> Any:
    _query(request, {})
    return admin.status(request.user)


def _get_settings(admin: Admin, request: HttpRequest) -> Any:
    _query(request, {})
    return admin.settings(request.user)


def _put_settings(admin: Admin, request: HttpRequest) -> Any:
    try:
        data = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deep
        raise _BadRequest({"body": f"not valid JSON ({exc})"}) from exc
    if not isinstance(data, dict):
        raise _BadRequest({"body": "must be a JSON object holding the complete settings"})
    return admin.change_settings(request.user, data)


def _disable(admin: Admin, request: HttpRequest) -> Any:
    _body(request, {})
    admin.disable(request.user)
    return {"enabled": False}


def _check(admin: Admin, request: HttpRequest) -> Any:
    _body(request, {})
    return admin.test_connection(request.user).to_json()


def _sync(admin: Admin, request: HttpRequest) -> Any:
    body = _body(request, {"backfill": bool, "since": str, "dry_run": bool, "wait": bool})
    since = None
    if body.get("since"):
        try:
            since = datetime.fromisoformat(body["since"])
        except ValueError as exc:
            raise _BadRequest({"since": "must be an ISO 8601 time with offset, such as "
                               "2026-01-31T00:00:00+00:00"}) from exc
        if since.tzinfo is None:
            raise _BadRequest({"since": "must carry a UTC offset (+00:00 or Z)"})
    return admin.run_sync(request.user, backfill=bool(body.get("backfill")), since=since,
                          dry_run=bool(body.get("dry_run")), wait=body.get("wait", True) is not False)


def _log(admin: Admin, request: HttpRequest) -> Any:
    q = _query(request, {"level": "str", "record": "str", "what": "str", "limit": "int",
                         "before": "int"})
    return admin.log(request.user, level=q.get("level"), record=q.get("record"),
                     what=q.get("what"), limit=q.get("limit", 50), before=q.get("before"))


def _history(admin: Admin, request: HttpRequest) -> Any:
    q = _query(request, {"kind": "str", "limit": "int", "before": "int"})
    return {"runs": admin.history(request.user, kind=q.get("kind"), limit=q.get("limit", 20),
                                  before=q.get("before"))}


def _dead_letters(admin: Admin, request: HttpRequest) -> Any:
    q = _query(request, {"kind": "str", "limit": "int"})
    return {"jobs": admin.dead_letters(request.user, kind=q.get("kind"), limit=q.get("limit", 100))}


def _replay_one(admin: Admin, request: HttpRequest) -> Any:
    _body(request, {})
    return admin.replay(request.user, _int_param(request, "job_id"))


def _replay_all(admin: Admin, request: HttpRequest) -> Any:
    body = _body(request, {"kind": str})
    return admin.replay_all(request.user, body.get("kind"))


def _prune(admin: Admin, request: HttpRequest) -> Any:
    body = _body(request, {"dry_run": bool})
    return admin.prune(request.user, dry_run=bool(body.get("dry_run")))


def _conflicts(admin: Admin, request: HttpRequest) -> Any:
    q = _query(request, {"status": "str", "limit": "int"})
    status = q.get("status", "open")
    return {"conflicts": admin.conflicts(request.user, status=None if status == "all" else status,
                                         limit=q.get("limit", 100))}


def _resolve(admin: Admin, request: HttpRequest) -> Any:
    body = _body(request, {"choice": str, "value": str})
    if body.get("choice") not in ("hubspot", "ambac", "value"):
        raise _BadRequest({"choice": "required: hubspot, ambac or value"})
    if body["choice"] == "value" and body.get("value") is None:
        raise _BadRequest({"value": "required when choice is value"})
    return admin.resolve_conflict(request.user, _int_param(request, "conflict_id"),
                                  body["choice"], body.get("value"))


def _company(admin: Admin, request: HttpRequest) -> Any:
    _query(request, {})
    return admin.company(request.user, request.path_params.get("company_id", ""))


def _companies(admin: Admin, request: HttpRequest) -> Any:
    q = _query(request, {"after": "int", "limit": "int"})
    return admin.companies(request.user, after=q.get("after", 0), limit=q.get("limit", 100))


def _preview(admin: Admin, request: HttpRequest) -> Any:
    _query(request, {})
    return admin.preview_order(request.user, _deal_id(request))


def _create_order(admin: Admin, request: HttpRequest) -> Any:
    body = _body(request, {"changes": dict, "reviewed_version": str})
    return admin.create_order_from_deal(request.user, _deal_id(request), body.get("changes") or {},
                                        body.get("reviewed_version"))


_ROUTES: tuple[tuple[str, str, str, str, Handler], ...] = (
    ("hubspot-status", "GET", "hubspot/status", VIEW_INTEGRATIONS, _status),
    ("hubspot-settings", "GET", "hubspot/settings", VIEW_INTEGRATIONS, _get_settings),
    ("hubspot-settings-change", "PUT", "hubspot/settings", MANAGE_INTEGRATIONS, _put_settings),
    ("hubspot-disable", "POST", "hubspot/disable", MANAGE_INTEGRATIONS, _disable),
    ("hubspot-check", "POST", "hubspot/check", MANAGE_INTEGRATIONS, _check),
    ("hubspot-sync", "POST", "hubspot/sync", MANAGE_INTEGRATIONS, _sync),
    ("hubspot-log", "GET", "hubspot/log", VIEW_INTEGRATIONS, _log),
    ("hubspot-history", "GET", "hubspot/history", VIEW_INTEGRATIONS, _history),
    ("hubspot-dead-letters", "GET", "hubspot/dead-letters", VIEW_INTEGRATIONS, _dead_letters),
    ("hubspot-replay-all", "POST", "hubspot/dead-letters/replay", MANAGE_INTEGRATIONS, _replay_all),
    ("hubspot-replay", "POST", "hubspot/dead-letters/{job_id}/replay", MANAGE_INTEGRATIONS, _replay_one),
    ("hubspot-prune", "POST", "hubspot/prune", MANAGE_INTEGRATIONS, _prune),
    ("hubspot-conflicts", "GET", "hubspot/conflicts", VIEW_INTEGRATIONS, _conflicts),
    ("hubspot-conflict-resolve", "POST", "hubspot/conflicts/{conflict_id}/resolve",
     MANAGE_INTEGRATIONS, _resolve),
    ("hubspot-companies", "GET", "hubspot/companies", VIEW_INTEGRATIONS, _companies),
    ("hubspot-company", "GET", "hubspot/companies/{company_id}", VIEW_INTEGRATIONS, _company),
    ("hubspot-deal-preview", "GET", "hubspot/deals/{deal_id}/preview", VIEW_INTEGRATIONS, _preview),
    ("hubspot-deal-create-order", "POST", "hubspot/deals/{deal_id}/order", MANAGE_INTEGRATIONS,
     _create_order),
)


def _serve(runtime: AdminRuntime, name: str, permission: str,
           handler: Handler) -> Callable[[HttpRequest], HttpResponse]:
    def serve(request: HttpRequest) -> HttpResponse:
        user = request.user
        if user is None:
            return _error(401, "unauthenticated", "sign in first")
        if not runtime.is_enabled(user.tenant_id):
            return _error(409, "not_enabled", "the HubSpot integration is not enabled for this "
                          "tenant; enable it under Settings > Integrations > HubSpot")
        admin = Admin(runtime, runtime.tenant(user.tenant_id).host)
        try:
            # Before reading the request: a refused user learns nothing from validation errors.
            admin.require(user, permission, f"The {name} route")
            return _json(200, handler(admin, request))
        except PermissionDeniedError as exc:
            return _error(403, "forbidden", str(exc), permission=exc.permission)
        except _BadRequest as exc:
            return _error(400, "bad_request", str(exc), problems=exc.problems)
        except DealChangedError as exc:  # what was reviewed is not what HubSpot holds now
            return _error(409, "changed", str(exc))
        except ConfigError as exc:
            return _error(400, "invalid", str(exc), problems=exc.problems)
        except LookupError as exc:
            return _error(404, "not_found", str(exc.args[0]) if exc.args else "not found")
        except (HostRecordError, MappingError) as exc:  # a value the host or the mapping refuses
            return _error(400, "refused", str(exc), field=exc.field)
        except HubSpotIntegrationError as exc:
            return _error(502, "hubspot", str(exc))

    return serve


def admin_routes(runtime: AdminRuntime) -> tuple[HttpRoute, ...]:
    """Every admin route, bound to ``runtime``."""
    return tuple(HttpRoute(name, method, path, permission, _serve(runtime, name, permission, handler))
                 for name, method, path, permission, handler in _ROUTES)
