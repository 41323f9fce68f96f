"""The CRM search language: filter groups (OR of ANDs), operators, sorts."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ._util import SandboxHttpError, parse_time_ms

Predicate = Callable[[Mapping[str, str]], bool]
_Record = TypeVar("_Record")

# Every query of a time property parses each record's value: remember the texts seen last.
_time_ms = functools.lru_cache(maxsize=1 << 16)(parse_time_ms)

MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS = 18
_OPERATORS = frozenset(
    {
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    }
)


def value_kind(definition: Mapping[str, Any] | None) -> str:
    """How values of a property compare: ``number``, ``time`` or ``text``."""
    if definition is None:
        return "text"
    type_ = definition.get("type")
    if type_ == "number":
        return "number"
    if type_ in ("datetime", "date"):
        return "time"
    return "text"


def _convert(kind: str, raw: str | None) -> Any:
    if raw is None or raw == "":
        return None
    if kind == "number":
        try:
            return float(raw)
        except ValueError:
            return None
    if kind == "time":
        if len(raw) == 10 and raw[4] == "-":  # a date-only value: midnight UTC
            raw = raw + "T00:00:00Z"
        return _time_ms(raw)
    return raw.lower()


def _filter_value(kind: str, raw: object, name: str) -> Any:
    converted = _convert(kind, None if raw is None else str(raw))
    if converted is None:
        raise SandboxHttpError(
            400, f"There was a problem with the request: {raw!r} is not a valid value for {name}."
        )
    return converted


def compile_filter(
    spec: Mapping[str, Any], definitions: Mapping[str, Mapping[str, Any]]
) -> Predicate:
    """Turn one ``Filter`` into a predicate over an object's property strings."""
    name = spec.get("propertyName")
    operator = spec.get("operator")
    if not isinstance(name, str) or operator not in _OPERATORS:
        raise SandboxHttpError(
            400, f"Invalid filter {dict(spec)!r}: needs propertyName and a known operator."
        )
    if name not in definitions:
        raise SandboxHttpError(
            400, f"There was a problem with the request: property {name!r} does not exist."
        )
    kind = value_kind(definitions[name])

    def current(props: Mapping[str, str]) -> Any:
        return _convert(kind, props.get(name))

    if operator == "HAS_PROPERTY":
        return lambda props: props.get(name) not in (None, "")
    if operator == "NOT_HAS_PROPERTY":
        return lambda props: props.get(name) in (None, "")
    if operator in ("IN", "NOT_IN"):
        values = spec.get("values")
        if not isinstance(values, list):
            raise SandboxHttpError(400, f"Operator {operator} needs a list in 'values'.")
        wanted = {_filter_value(kind, item, name) for item in values}
        if operator == "IN":
            return lambda props: current(props) in wanted
        return lambda props: current(props) not in wanted
    if operator == "BETWEEN":
        low = _filter_value(kind, spec.get("value"), name)
        high = _filter_value(kind, spec.get("highValue"), name)

        def between(props: Mapping[str, str]) -> bool:
            value = current(props)
            return value is not None and low <= value <= high

        return between
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        token = str(spec.get("value", "")).lower().strip("*")
        contains = operator == "CONTAINS_TOKEN"
        return lambda props: (token in (props.get(name) or "").lower()) == contains
    target = _filter_value(kind, spec.get("value"), name)
    if operator == "EQ":
        return lambda props: current(props) == target
    if operator == "NEQ":
        return lambda props: current(props) != target

    def ordered(props: Mapping[str, str]) -> bool:
        value = current(props)
        if value is None:
            return False
        if operator == "LT":
            return bool(value < target)
        if operator == "LTE":
            return bool(value <= target)
        if operator == "GT":
            return bool(value > target)
        return bool(value >= target)

    return ordered


def compile_groups(
    groups: Sequence[Mapping[str, Any]], definitions: Mapping[str, Mapping[str, Any]]
) -> Predicate | None:
    """One predicate for all filter groups (OR of ANDs); None when there is no filter."""
    if not groups:
        return None
    if len(groups) > MAX_GROUPS:
        raise SandboxHttpError(
            400, f"Too many filter groups ({len(groups)}); the maximum is {MAX_GROUPS}."
        )
    compiled: list[list[Predicate]] = []
    total = 0
    for group in groups:
        filters = group.get("filters") or []
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise SandboxHttpError(
                400,
                f"Too many filters in a group ({len(filters)}); "
                f"the maximum is {MAX_FILTERS_PER_GROUP}.",
            )
        total += len(filters)
        compiled.append([compile_filter(item, definitions) for item in filters])
    if total > MAX_FILTERS:
        raise SandboxHttpError(400, f"Too many filters ({total}); the maximum is {MAX_FILTERS}.")
    return lambda props: any(all(check(props) for check in group) for group in compiled)


def parse_sorts(
    sorts: Sequence[Any], definitions: Mapping[str, Mapping[str, Any]]
) -> list[tuple[str, str, bool]]:
    """``(property, kind, descending)`` per sort; accepts objects and ``"-name"`` strings."""
    parsed: list[tuple[str, str, bool]] = []
    for sort in sorts:
        if isinstance(sort, str):
            descending = sort.startswith("-")
            name = sort.lstrip("-")
        elif isinstance(sort, Mapping):
            name = str(sort.get("propertyName", ""))
            descending = str(sort.get("direction", "ASCENDING")).upper() == "DESCENDING"
        else:
            raise SandboxHttpError(400, f"Invalid sort {sort!r}.")
        if name not in definitions:
            raise SandboxHttpError(
                400,
                f"There was a problem with the request: cannot sort by unknown property {name!r}.",
            )
        parsed.append((name, value_kind(definitions[name]), descending))
    return parsed


def sort_key_for(name: str, kind: str) -> Callable[[Mapping[str, str]], tuple[bool, Any]]:
    """A key that sorts missing values last and compares by kind."""

    def key(props: Mapping[str, str]) -> tuple[bool, Any]:
        value = _convert(kind, props.get(name))
        return (value is None, value if value is not None else 0)

    return key


def sort_records(
    records: list[_Record],
    sorts: Sequence[tuple[str, str, bool]],
    props: Callable[[_Record], Mapping[str, str]],
) -> None:
    """Sort ``records`` in place by ``sorts`` of their ``props`` (stable: ties keep order)."""
    for name, kind, descending in reversed(sorts):
        key = sort_key_for(name, kind)
        if descending:
            records.sort(
                key=lambda record: (not key(props(record))[0], key(props(record))[1]), reverse=True
            )
        else:
            records.sort(key=lambda record: key(props(record)))


def text_query_matcher(query: str, searchable: Sequence[str]) -> Predicate:
    """The free-text ``query``: a case-insensitive prefix/substring match on searchable fields."""
    needle = query.lower().strip()
    return lambda props: any(needle in (props.get(name) or "").lower() for name in searchable)
