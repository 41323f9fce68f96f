"""The two path families the sandbox serves on one state: legacy v3/v4 and date-based 2026-09.

Each operation has one implementation (``_server.Service`` routes it, ``_state.Portal`` does
it); a family only maps its paths onto it and shapes the answer:

- legacy (``/crm/v3/...``, ``/crm/v4/...``): a batch that fails for some items answers 207,
  and write answers leave out named properties without a value (its specs say property values
  are non-nullable strings);
- 2026-09 (``/crm/objects/2026-09/...``, ``/crm/associations/2026-09/...``,
  ``/crm/pipelines/2026-09/...``, ``/crm/properties/2026-09/...``): there is no 207 (per-item
  ``errors`` and ``numErrors`` come in a 200 body) and named properties without a value answer
  ``null`` in every answer.

Both page an association batch read at 500 links per input, continued by resending that input
with its ``after``; the legacy family also continues it with the per-object GET
(``/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}?after=``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

DATED = "2026-09"
ASSOCIATION_PAGE_SIZE = 500
"""Links per input in one association batch read (either family), and the most one per-object
v4 association GET answers; more are paged with ``after``."""

# each date-based family and the legacy version whose handlers serve it
_LEGACY_VERSION = {"objects": "v3", "associations": "v4", "pipelines": "v3", "properties": "v3"}

DATED_OPERATIONS = (
    ("GET", "/crm/objects/2026-09/{objectType}"),
    ("POST", "/crm/objects/2026-09/{objectType}"),
    ("GET", "/crm/objects/2026-09/{objectType}/{objectId}"),
    ("PATCH", "/crm/objects/2026-09/{objectType}/{objectId}"),
    ("POST", "/crm/objects/2026-09/{objectType}/batch/read"),
    ("POST", "/crm/objects/2026-09/{objectType}/batch/create"),
    ("POST", "/crm/objects/2026-09/{objectType}/batch/update"),
    ("POST", "/crm/objects/2026-09/{objectType}/batch/upsert"),
    ("POST", "/crm/objects/2026-09/{objectType}/search"),
    ("POST", "/crm/associations/2026-09/{fromObjectType}/{toObjectType}/batch/read"),
    ("GET", "/crm/pipelines/2026-09/{objectType}"),
    ("GET", "/crm/pipelines/2026-09/{objectType}/{pipelineId}"),
    ("GET", "/crm/properties/2026-09/{objectType}"),
    ("POST", "/crm/properties/2026-09/{objectType}"),
    ("GET", "/crm/properties/2026-09/{objectType}/{propertyName}"),
    ("GET", "/crm/properties/2026-09/{objectType}/groups"),
    ("POST", "/crm/properties/2026-09/{objectType}/groups"),
    ("GET", "/crm/properties/2026-09/{objectType}/groups/{groupName}"),
)
"""The 2026-09 operations served: the ones the legacy family serves that have a 2026-09 form
and the adapter needs (no deletes, archives, merges or association writes yet)."""

ACCOUNT_OPERATIONS = (
    ("GET", "/account-info/v3/details"),
    ("GET", f"/account-info/{DATED}/details"),
)
"""The account details, in either family (the same answer): whose account a token is.
HubSpot's spec of them is not among the ones the sandbox's tests validate against."""

_DATED_PATTERNS = [
    (method, re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"))
    for method, template in DATED_OPERATIONS
]


def legacy_parts(parts: Sequence[str]) -> list[str] | None:
    """The legacy path segments a 2026-09 path is served by, or None for any other path."""
    if len(parts) >= 4 and parts[0] == "crm" and parts[2] == DATED and parts[1] in _LEGACY_VERSION:
        return ["crm", _LEGACY_VERSION[parts[1]], parts[1], *parts[3:]]
    return None


def serves_dated(method: str, path: str) -> bool:
    """Whether ``method path`` is one of :data:`DATED_OPERATIONS`."""
    bare = path.rstrip("/")
    return any(m == method and pattern.match(bare) for m, pattern in _DATED_PATTERNS)


def dated_answer(status: int, payload: Any) -> tuple[int, Any]:
    """A 2026-09 answer: a partly failed batch is a 200 whose body carries the errors."""
    return (200 if status == 207 else status), payload


def write_shape(dated: bool) -> Callable[[int, Any], tuple[int, Any]]:
    """How a family shapes the answer to a write: 2026-09 keeps the nulls, legacy drops them."""
    return _as_answered if dated else legacy_write


def _as_answered(status: int, payload: Any) -> tuple[int, Any]:
    return status, payload


def legacy_write(status: int, payload: Any) -> tuple[int, Any]:
    """A legacy write answer: named properties without a value are left out, not null."""
    if isinstance(payload, dict):
        for obj in payload.get("results", [payload]):
            properties = obj.get("properties")
            if isinstance(properties, dict):
                obj["properties"] = {k: v for k, v in properties.items() if v is not None}
    return status, payload
