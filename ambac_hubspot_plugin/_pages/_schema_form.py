"""A form drawn from a JSON Schema (the settings schema of the plugin's manifest), and read back.

:func:`form_nodes` turns the schema into fields and fieldsets: strings, whole numbers, booleans,
enums (a select), write-only strings (a secret field), nested objects (a fieldset), a union of
objects told apart by one property (a fieldset with a select of that property: the settings'
``credentials``), arrays of scalars (one per line), maps of scalars or of lists
(``key = value`` lines) and anything else (JSON). :func:`read_form` turns a posted form into
the JSON data the schema describes; whether the values are right is for the settings'
validation to say, by field path. Nothing here knows one settings field by name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal, Union

import attrs

from .._secrets import MASK, redact_url

__all__ = ["Field", "Group", "Node", "current_values", "fields_of", "form_nodes", "owner", "read_form",
           "secret_is_set", "typed_values"]

Kind = Literal["text", "integer", "boolean", "select", "secret", "lines", "pairs", "json"]
_SCALARS = ("string", "integer")
_WHOLE = re.compile(r"-?[0-9]{1,18}")  # a whole number as typed (ASCII digits, 64 bits)
_SIMPLE: dict[str, Kind] = {"string": "text", "integer": "integer", "boolean": "boolean"}


@attrs.frozen
class Field:
    """One form control: ``path`` is its dotted settings path and its form field name."""

    path: str
    kind: Kind
    label: str
    hint: str = ""
    required: bool = False
    nullable: bool = False
    choices: tuple[str, ...] = ()
    #: For ``pairs``: each value is a ``string``, an ``integer`` or a ``list`` (comma-separated).
    values: str = "string"


@attrs.frozen
class Group:
    """A fieldset; for a union, ``tag`` is the property that picks the option and ``options``
    maps each of its values to the names of the option's properties."""

    path: str
    label: str
    hint: str
    children: tuple[Node, ...]
    tag: str | None = None
    options: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)


Node = Union[Field, Group]  # noqa: UP007  # a recursive alias needs Union


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _described(schema: Mapping[str, Any]) -> str:
    return str(schema.get("description", "")).replace("``", "")  # reST literals of docstrings


def _hint(schema: Mapping[str, Any], option: Mapping[str, Any]) -> str:
    parts = [_described(schema) or _described(option)]
    minimum = option.get("minimum", schema.get("minimum"))
    maximum = option.get("maximum", schema.get("maximum"))
    if minimum is not None:
        parts.append(f"At least {minimum}" + ("." if maximum is None else f", at most {maximum}."))
    default = schema.get("default", option.get("default"))
    if isinstance(default, bool):
        parts.append(f"Default: {'on' if default else 'off'}.")
    elif default not in (None, ""):
        parts.append(f"Default: {default}.")
    return " ".join(p for p in parts if p)


def form_nodes(schema: Mapping[str, Any]) -> tuple[Node, ...]:
    """The fields and fieldsets of an object schema's properties, in the schema's order."""
    return _children(schema, "")


def _children(schema: Mapping[str, Any], prefix: str) -> tuple[Node, ...]:
    required = set(schema.get("required", ()))
    return tuple(_node(prefix + name, name, prop, name in required)
                 for name, prop in schema.get("properties", {}).items())


def _node(path: str, name: str, schema: Mapping[str, Any], required: bool) -> Node:
    options = list(schema.get("anyOf", [schema]))
    nullable = any(o.get("type") == "null" for o in options)
    options = [o for o in options if o.get("type") != "null"]
    if len(options) > 1 and all(o.get("type") == "object" and "properties" in o for o in options):
        return _union(path, name, schema, options)
    option = options[0] if len(options) == 1 else {}
    field = Field(path, "json", _label(name), _hint(schema, option), required=required, nullable=nullable)
    kind = option.get("type")
    if option.get("writeOnly"):
        return attrs.evolve(field, kind="secret")
    if "enum" in option:
        return attrs.evolve(field, kind="select", choices=tuple(str(v) for v in option["enum"]))
    if kind in _SIMPLE:
        return attrs.evolve(field, kind=_SIMPLE[kind])
    if kind == "object" and "properties" in option:
        return Group(path, _label(name), _described(option), _children(option, path + "."))
    if kind == "object" and isinstance(option.get("additionalProperties"), Mapping):
        values = option["additionalProperties"]
        if values.get("type") in _SCALARS:
            return attrs.evolve(field, kind="pairs", values=str(values["type"]))
        if values.get("type") == "array" and values.get("items", {}).get("type") in _SCALARS:
            return attrs.evolve(field, kind="pairs", values="list")
    if kind == "array" and option.get("items", {}).get("type") in _SCALARS:
        return attrs.evolve(field, kind="lines")
    return field


def _union(path: str, name: str, schema: Mapping[str, Any], options: list[Mapping[str, Any]]) -> Node:
    tags = [n for n, p in options[0]["properties"].items()
            if all(len(o["properties"].get(n, {}).get("enum", ())) == 1 for o in options)]
    if not tags:
        return Field(path, "json", _label(name), _hint(schema, {}), nullable=False)
    tag = tags[0]
    kinds = {str(o["properties"][tag]["enum"][0]): o for o in options}
    described = " ".join(f"{k}: {_described(o)}" for k, o in kinds.items())
    children: dict[str, Node] = {tag: Field(f"{path}.{tag}", "select", _label(tag), described, required=True,
                                            choices=tuple(kinds))}
    for option in kinds.values():
        for node in _children(option, path + "."):
            short = node.path.rpartition(".")[2]
            children.setdefault(short, node)
    used = {short: [k for k, o in kinds.items() if short in o["properties"]] for short in children}
    for short, node in list(children.items()):
        if short != tag and isinstance(node, Field) and len(used[short]) < len(kinds):
            note = f"{'Required' if node.required else 'Used'} with {tag} {' or '.join(used[short])}."
            children[short] = attrs.evolve(node, hint=f"{note} {node.hint}".strip(), required=False)
    return Group(path, _label(name), _described(schema), tuple(children.values()), tag,
                 {k: tuple(o["properties"]) for k, o in kinds.items()})


def fields_of(nodes: tuple[Node, ...]) -> list[Field]:
    """Every field, depth first."""
    return [f for n in nodes for f in ([n] if isinstance(n, Field) else fields_of(n.children))]


def _at(data: object, path: str) -> object:
    for part in path.split("."):
        data = data.get(part) if isinstance(data, Mapping) else None
    return data


def secret_is_set(current: Mapping[str, Any], path: str) -> bool:
    """Whether the settings as read (secrets as ``***``) hold a secret at ``path``."""
    return _at(current, path) == MASK


def _text(field: Field, value: object) -> str | bool:
    if field.kind == "boolean":
        return value is True
    if value is None or field.kind == "secret":
        return ""
    if field.kind == "lines" and isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if field.kind == "pairs" and isinstance(value, Mapping):
        return "\n".join(f"{k} = {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in value.items())
    if field.kind == "json":
        return "" if value in ({}, []) else json.dumps(value, indent=2, sort_keys=True)
    return str(value)


def current_values(nodes: tuple[Node, ...], current: Mapping[str, Any]) -> dict[str, str | bool]:
    """What each field shows for the current settings (as read, secrets already ``***``);
    secret fields show nothing."""
    return {f.path: _text(f, _at(current, f.path)) for f in fields_of(nodes)}


def typed_values(nodes: tuple[Node, ...], form: Mapping[str, str]) -> dict[str, str | bool]:
    """What each field shows again after a refused save: what was typed, except secrets (never
    sent back) and URL passwords (shown as ``***``)."""
    return {f.path: (f.path in form if f.kind == "boolean" else
                     "" if f.kind == "secret" else redact_url(form.get(f.path, "")))
            for f in fields_of(nodes)}


def owner(path: str, paths: set[str]) -> str | None:
    """The field a problem at ``path`` belongs to: itself, or the nearest field above it."""
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in paths:
            return ".".join(parts[:end])
    return None


def read_form(nodes: tuple[Node, ...], form: Mapping[str, str],
              current: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings a posted form stands for, and the problems of fields that cannot be read
    (those keep their current value, so the rest can be checked).

    An empty secret field keeps the current secret (sent as ``***``, which the admin API
    replaces with the stored one) when there is one; else it is left out (or null).
    """
    problems: dict[str, str] = {}
    return _read(nodes, form, current, problems, ""), problems


def _read(nodes: tuple[Node, ...], form: Mapping[str, str], current: Mapping[str, Any],
          problems: dict[str, str], prefix: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for node in nodes:
        name = node.path[len(prefix):]
        if isinstance(node, Group):
            data[name] = _read_group(node, form, current, problems)
            continue
        value = _read_field(node, form.get(node.path), current, problems)
        if value is not _LEAVE_OUT:
            data[name] = value
    return data


def _read_group(group: Group, form: Mapping[str, str], current: Mapping[str, Any],
                problems: dict[str, str]) -> dict[str, Any]:
    if group.tag is None:
        return _read(group.children, form, current, problems, group.path + ".")
    kind = form.get(f"{group.path}.{group.tag}", "")
    names = group.options.get(kind)
    if names is None:
        return {group.tag: kind}  # the settings' validation names the field and the kinds allowed
    if _at(current, f"{group.path}.{group.tag}") != kind:
        current = {}  # another kind: its secrets are not set yet
    chosen = tuple(n for n in group.children if n.path.rpartition(".")[2] in names)
    return _read(chosen, form, current, problems, group.path + ".")


class _LeaveOut:
    pass


_LEAVE_OUT = _LeaveOut()


def _read_field(field: Field, raw: str | None, current: Mapping[str, Any], problems: dict[str, str]) -> object:
    text = (raw or "").strip()
    if field.kind == "boolean":
        return raw is not None
    if field.kind == "secret":
        if raw:
            return raw
        if secret_is_set(current, field.path):
            return MASK
        return None if field.nullable else _LEAVE_OUT
    if not text and field.nullable:
        return None
    if field.kind == "integer":
        # Not a whole number: sent as typed, and the validation says so beside the field.
        return int(text) if _WHOLE.fullmatch(text) else text
    if field.kind == "lines":
        return [line.strip() for line in text.splitlines() if line.strip()]
    try:
        if field.kind == "pairs":
            return _pairs(field, text)
        if field.kind == "json":
            return json.loads(text) if text else {}
    except ValueError as exc:
        problems[field.path] = str(exc) if field.kind == "pairs" else (
            "is not valid JSON; write an object such as {\"name\": \"value\"}")
        return _at(current, field.path)
    return text


def _pairs(field: Field, text: str) -> dict[str, Any]:
    pairs: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = (part.strip() for part in line.partition("="))
        if not sep or not key:
            raise ValueError(f"line {number} is not written as key = value")
        if field.values == "list":
            pairs[key] = [v.strip() for v in value.split(",") if v.strip()]
        elif field.values == "integer" and value.lstrip("-").isdigit():
            pairs[key] = int(value)
        else:
            pairs[key] = value
    return pairs
