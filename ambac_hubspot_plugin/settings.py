"""A tenant's settings for the HubSpot integration: the model, its validation and its schema.

Settings arrive from the host as JSON-compatible data. :func:`parse_settings` structures them
with cattrs (unknown keys rejected) and raises one :class:`~ambac_hubspot_plugin.errors.ConfigError`
naming every bad field path. Secrets are :class:`Secret` values: write-only, never shown by
``repr``, ``str``, logs or status output. :func:`settings_schema` exports the JSON Schema the host
draws its settings form from. The model itself (the attrs classes and their value checks) lives
in ``_settings_model``; every public name of it is imported from here.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

import attrs
import cattrs
from cattrs.strategies import configure_tagged_union

from ._secrets import MASK, redact_url, url_passwords
from ._settings_model import (
    ALLOW_LOCAL_SANDBOX_ENV,
    CREDENTIAL_KINDS,
    RATE_LIMIT_BACKEND_SCHEMES,
    AlertSettings,
    ApiVersion,
    AtLeast,
    ConflictSettings,
    Credentials,
    Directions,
    MappingSettings,
    OAuthCredentials,
    OutboundSettings,
    PrivateAppCredentials,
    ProjectAppCredentials,
    RetentionSettings,
    Secret,
    ServiceKeyCredentials,
    Settings,
    local_sandbox_allowed,
)
from ._settings_model import Invalid as _Invalid  # a value error in the plugin's own words
from .errors import ConfigError
from .host import OrderStatus

__all__ = [
    "ALLOW_LOCAL_SANDBOX_ENV",
    "RATE_LIMIT_BACKEND_SCHEMES",
    "AlertSettings",
    "ConflictSettings",
    "Directions",
    "MappingSettings",
    "OAuthCredentials",
    "OutboundSettings",
    "PrivateAppCredentials",
    "ProjectAppCredentials",
    "RetentionSettings",
    "Secret",
    "ServiceKeyCredentials",
    "Settings",
    "local_sandbox_allowed",
    "parse_settings",
    "restore_masked",
    "secret_values",
    "settings_schema",
    "unstructure_settings",
]


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)

    def structure_secret(value: object, _type: type) -> Secret:
        if not isinstance(value, str):
            raise _Invalid("must be a string")
        if value == MASK:
            # What the settings read back show; stored, it would be sent as the token.
            raise _Invalid(f"is the masked placeholder {MASK!r}, not a secret: type the secret "
                             "itself (the admin API's settings change keeps the stored one)")
        return Secret(value)

    conv.register_structure_hook(Secret, structure_secret)
    conv.register_unstructure_hook(Secret, lambda _s: MASK)

    # cattrs coerces by default (bool("maybe") is True, list("closedwon") is nine stages);
    # settings from a form must be the type they claim to be.
    def structure_bool(value: object, _type: type) -> bool:
        if not isinstance(value, bool):
            raise _Invalid("must be true or false")
        return value

    def structure_int(value: object, _type: type) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid("must be a whole number")
        return value

    def structure_str(value: object, _type: type) -> str:
        # A whole number is taken as its digits (ids typed as JSON numbers: a portal id, a
        # stage id); anything else that is not text (null, true, a list) is refused, never
        # stored as the text "None".
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise _Invalid("must be text")
        return value

    def list_hook(tp: Any) -> Any:
        (item,) = typing.get_args(tp) or (Any,)

        def structure_list(value: object, _type: type) -> list[Any]:
            if not isinstance(value, list | tuple):
                raise _Invalid("must be a list")
            return [conv.structure(v, item) for v in value]

        return structure_list

    def is_list(tp: Any) -> bool:
        # get_origin's stubs promise a ParamSpec for an Any argument; name the result object.
        origin: object = typing.get_origin(tp)
        return origin is list

    def structure_api_version(value: object, _type: object) -> str:
        versions = typing.get_args(ApiVersion)
        if value not in versions:
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise _Invalid(f"{shown} is not an API version; use {versions[0]!r} (HubSpot's "
                           f"date-based API, the default) or {versions[1]!r} (the legacy v3/v4 "
                           "paths, which HubSpot switches off from 2027)")
        return typing.cast(str, value)

    def structure_status(value: object, _type: type) -> OrderStatus:
        # The values (``IN_PROGRESS``); labels (``In progress``, any case) are the deprecated
        # form settings had before, normalised to the value.
        try:
            return OrderStatus.parse(value)
        except ValueError:
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise _Invalid(f"{shown} is not an order status; use one of {OrderStatus.allowed()}") from None

    conv.register_structure_hook_func(lambda tp: tp == ApiVersion, structure_api_version)
    conv.register_structure_hook(OrderStatus, structure_status)
    conv.register_structure_hook(bool, structure_bool)
    conv.register_structure_hook(int, structure_int)
    conv.register_structure_hook(str, structure_str)
    conv.register_structure_hook_factory(is_list, list_hook)
    configure_tagged_union(
        Credentials,
        conv,
        tag_name="kind",
        tag_generator=lambda cls: {c: kind for kind, c in CREDENTIAL_KINDS.items()}[cls],
    )
    return conv


_converter = _make_converter()

_RETIRED_KEYS = {"hapikey", "api_key", "apikey"}


def _find_retired_keys(data: object, path: str = "") -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if str(key).lower() in _RETIRED_KEYS:
                found.append(
                    (
                        where,
                        "HubSpot retired API keys (hapikey) on 2022-11-30; use a project-based "
                        "app's access token (credentials.kind = project_app), a service key "
                        "(credentials.kind = service_key) or OAuth (credentials.kind = oauth) "
                        "instead",
                    )
                )
            else:
                found.extend(_find_retired_keys(value, where))
    return found


_ERROR_LINE = re.compile(r"^(?P<msg>.*) @ \$(?P<path>.*)$")


def parse_settings(data: Mapping[str, Any]) -> Settings:
    """Structure and validate raw settings; raise one ``ConfigError`` naming every bad field."""
    if not isinstance(data, Mapping):
        raise ConfigError.from_problems([("settings", "must be an object (a JSON mapping)")])
    retired = _find_retired_keys(data)
    if retired:
        # Named alongside every other problem: the rest is checked without the retired keys.
        data = _without_keys(data, _RETIRED_KEYS)
    try:
        settings = _converter.structure(dict(data), Settings)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        # cattrs stops at the first failing __init__ and reports validator errors at the
        # parent's path; run the validators on the raw data too, so every bad field is named.
        checked = _check_values(Settings, data, "")
        reported = {why for _path, why in checked}
        problems = [p for p in _describe(exc) if p[1] not in reported]
        credentials = data.get("credentials")
        if isinstance(credentials, Mapping) and credentials.get("kind") not in CREDENTIAL_KINDS:
            # cattrs reports an unknown tag as a missing field; say what kind may be instead.
            problems = [p for p in problems if p[0] != "credentials"]
            kinds = ", ".join(repr(kind) for kind in CREDENTIAL_KINDS)
            problems.append(("credentials.kind", f"must be one of {kinds}"))
        raise ConfigError.from_problems(retired + checked + problems) from exc
    if retired:
        raise ConfigError.from_problems(retired)
    return settings


def _without_keys(data: Mapping[str, Any], keys: set[str]) -> dict[str, Any]:
    return {k: _without_keys(v, keys) if isinstance(v, Mapping) else v
            for k, v in data.items() if str(k).lower() not in keys}


class _RawView:
    """Raw settings seen as attributes, for validators that read another field."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        return self._data.get(name)


def _check_values(cls: type, data: Mapping[str, Any], path: str) -> list[tuple[str, str]]:
    """Run the attrs validators of ``cls`` on raw ``data``; return ``(path, message)`` pairs."""
    problems: list[tuple[str, str]] = []
    hints = typing.get_type_hints(cls)
    for field in attrs.fields(cls):
        name = field.alias or field.name
        if name not in data:
            continue
        where = f"{path}.{name}" if path else name
        raw, hint = data[name], hints[field.name]
        nested = _attrs_class_for(hint, raw)
        if nested is not None and isinstance(raw, Mapping):
            problems.extend(_check_values(nested, raw, where))
        if field.validator is None:
            continue
        try:
            value = _converter.structure(raw, hint)
        except Exception:  # noqa: S112  # a type error, which the cattrs pass reports; this pass checks values
            continue
        try:
            field.validator(_RawView(data), field, value)
        except ValueError as exc:
            problems.append((where, str(exc)))
    return problems


def _attrs_class_for(hint: Any, raw: object) -> type | None:
    if attrs.has(hint):
        return typing.cast(type, hint)
    if hint == Credentials and isinstance(raw, Mapping):
        return CREDENTIAL_KINDS.get(str(raw.get("kind")))
    return None


def _describe(exc: BaseException) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for line in cattrs.transform_error(exc, path="$", format_exception=_format_exception):
        match = _ERROR_LINE.match(line)
        if match:
            path = match["path"].lstrip(".") or "settings"
            problems.append((path.replace("['", ".").replace("']", ""), match["msg"]))
        else:
            problems.append(("settings", line))
    return problems


def _format_exception(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"unknown field(s) {sorted(exc.extra_fields)}; remove them (check the spelling)"
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, _Invalid):
        return str(exc)
    if isinstance(exc, ValueError) and type_ is not None and hasattr(type_, "__members__"):
        choices = ", ".join(repr(m.value) for m in type_)  # type: ignore[attr-defined]  # an Enum
        return f"must be one of {choices}"
    if typing.get_origin(type_) is Literal:
        return f"must be one of {', '.join(repr(a) for a in typing.get_args(type_))}"
    name = getattr(type_, "__name__", None) or str(type_)
    return f"must be of type {name}"


_URL_FIELDS = ("store_url", "rate_limit_backend")
"""The settings that are URLs whose password is write-only."""


def unstructure_settings(settings: Settings) -> dict[str, Any]:
    """Return settings as JSON-compatible data, every secret (and store password) as ``***``."""
    data: dict[str, Any] = _converter.unstructure(settings)
    for name in _URL_FIELDS:
        if getattr(settings, name) is not None:
            data[name] = redact_url(getattr(settings, name))
    return data


def secret_values(settings: Settings) -> list[str]:
    """Every secret string of the settings, the store password included (to scrub outputs)."""
    candidates = [settings.webhook_client_secret] + [
        getattr(settings.credentials, name, None)
        for name in ("access_token", "client_secret", "refresh_token")]
    found = [value.reveal() for value in candidates if isinstance(value, Secret)]
    for name in _URL_FIELDS:
        if getattr(settings, name):
            found += url_passwords(getattr(settings, name))
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


def restore_masked(raw: Mapping[str, Any], current: Settings | None) -> dict[str, Any]:
    """``raw`` with each masked value (``***``, as read back) replaced by the current secret.

    This is what makes a round trip safe: settings read with :func:`unstructure_settings` and
    sent back unchanged keep their secrets. A masked value with no current secret to stand for
    stays, and :func:`parse_settings` refuses it.
    """
    data = dict(raw)
    if current is None:
        return data
    if data.get("webhook_client_secret") == MASK and current.webhook_client_secret is not None:
        data["webhook_client_secret"] = current.webhook_client_secret.reveal()
    credentials = data.get("credentials")
    if isinstance(credentials, Mapping) and credentials.get("kind") == current.credentials.kind:
        credentials = dict(credentials)
        for name in ("access_token", "client_secret", "refresh_token"):
            stored = getattr(current.credentials, name, None)
            if credentials.get(name) == MASK and isinstance(stored, Secret):
                credentials[name] = stored.reveal()
        data["credentials"] = credentials
    for name in _URL_FIELDS:
        stored, sent = getattr(current, name), data.get(name)
        if stored and sent != stored and sent == redact_url(stored):
            data[name] = stored
    return data


# ---- JSON Schema ----------------------------------------------------------------------------

def settings_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of :class:`Settings`, for the host's settings form."""
    schema = _schema_for(Settings)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "HubSpot integration settings"
    return schema


def _schema_for(tp: Any) -> dict[str, Any]:  # one branch per kind of type
    origin = typing.get_origin(tp)
    if tp is Secret:
        return {"type": "string", "writeOnly": True, "minLength": 1}
    if tp is str:
        return {"type": "string"}
    if tp is int:
        return {"type": "integer"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is Any:
        return {}
    if isinstance(tp, type) and issubclass(tp, OrderStatus):
        return {"type": "string", "enum": [s.value for s in OrderStatus]}
    if origin is Literal:
        return {"enum": list(typing.get_args(tp))}
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        options = [_schema_for(a) for a in args]
        if type(None) in typing.get_args(tp):
            options.append({"type": "null"})
        return options[0] if len(options) == 1 else {"anyOf": options}
    if origin is dict:
        _key, value = typing.get_args(tp)
        return {"type": "object", "additionalProperties": _schema_for(value)}
    if origin is list:
        return {"type": "array", "items": _schema_for(typing.get_args(tp)[0])}
    if attrs.has(tp):
        hints = typing.get_type_hints(tp)
        props: dict[str, Any] = {}
        required: list[str] = []
        for field in attrs.fields(tp):
            name = field.alias or field.name
            props[name] = _schema_for(hints[field.name])
            if isinstance(field.validator, AtLeast):
                props[name]["minimum"] = field.validator.minimum
                if field.validator.maximum is not None:
                    props[name]["maximum"] = field.validator.maximum
            if field.default is attrs.NOTHING:
                required.append(name)
            elif not isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]  # Factory is a class
                default = field.default
                if isinstance(default, OrderStatus):
                    default = default.value
                if default is None or isinstance(default, str | int | bool):
                    props[name]["default"] = default
        schema: dict[str, Any] = {
            "type": "object",
            "title": tp.__name__,
            "properties": props,
            "additionalProperties": False,
        }
        if tp.__doc__:
            schema["description"] = tp.__doc__.strip().splitlines()[0]
        if required:
            schema["required"] = required
        return schema
    raise TypeError(f"no JSON Schema rule for {tp!r}")
