"""HubSpot's resource paths per ``api_version``: the one table the adapter takes them from.

``2026-09`` is HubSpot's date-based API (its 18-month support window outlives 2026-03); ``v3``
is the legacy v3/v4 family, selectable until HubSpot switches it off (OAuth v1 on 2027-02-16,
associations v4 on 2027-03-30, the v3 CRM paths in September 2027).

Placeholders in braces are path parameters, filled and URL-quoted by the transport.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

__all__ = ["API_PATHS", "DEFAULT_API_VERSION", "Route"]

DEFAULT_API_VERSION = "2026-09"


class Route(NamedTuple):
    """One HubSpot operation: its HTTP method and resource path template."""

    method: str
    path: str


def _family(objects: str, associations: str, pipelines: str, properties: str) -> dict[str, Route]:
    return {
        "objects.search": Route("POST", f"{objects}/{{objectType}}/search"),
        "objects.get": Route("GET", f"{objects}/{{objectType}}/{{objectId}}"),
        "objects.create": Route("POST", f"{objects}/{{objectType}}"),
        "objects.batch_read": Route("POST", f"{objects}/{{objectType}}/batch/read"),
        "objects.batch_create": Route("POST", f"{objects}/{{objectType}}/batch/create"),
        "objects.batch_update": Route("POST", f"{objects}/{{objectType}}/batch/update"),
        "objects.batch_upsert": Route("POST", f"{objects}/{{objectType}}/batch/upsert"),
        "associations.batch_read": Route(
            "POST", f"{associations}/{{fromObjectType}}/{{toObjectType}}/batch/read"
        ),
        "pipelines.list": Route("GET", f"{pipelines}/{{objectType}}"),
        "properties.create": Route("POST", f"{properties}/{{objectType}}"),
        "properties.get": Route("GET", f"{properties}/{{objectType}}/{{propertyName}}"),
        "property_groups.create": Route("POST", f"{properties}/{{objectType}}/groups"),
    }


#: api_version -> operation -> route.
API_PATHS: Mapping[str, Mapping[str, Route]] = MappingProxyType({
    "2026-09": MappingProxyType({
        **_family(
            "/crm/objects/2026-09",
            "/crm/associations/2026-09",
            "/crm/pipelines/2026-09",
            "/crm/properties/2026-09",
        ),
        # The 2026-09 specs document no success answer for /oauth/2026-09/token; 2026-03's does.
        "oauth.token": Route("POST", "/oauth/2026-03/token"),
        "account.details": Route("GET", "/account-info/2026-09/details"),
        # No "associations.page": past 500 links an input is resent to the batch read with
        # its ``after``.
    }),
    "v3": MappingProxyType({
        **_family(
            "/crm/v3/objects", "/crm/v4/associations", "/crm/v3/pipelines", "/crm/v3/properties"
        ),
        "oauth.token": Route("POST", "/oauth/v1/token"),
        "account.details": Route("GET", "/account-info/v3/details"),
        # v4 continues one object's links past a batch result with this GET.
        "associations.page": Route(
            "GET", "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}"
        ),
    }),
})

