"""HubSpot's resource paths per ``api_version``: the one table the adapter takes them from.

``2026-09`` is HubSpot's date-based API (its 18-month support window outlives 2026-03); ``v3``
is the legacy v3/v4 family, selectable until HubSpot switches it off. Only the OAuth token
endpoint is looked up here so far; the CRM paths are still the SDK's v3/v4 ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["API_PATHS", "DEFAULT_API_VERSION", "api_path"]

DEFAULT_API_VERSION = "2026-09"

#: api_version -> operation -> resource path.
API_PATHS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    # The 2026-09 specs document no success answer for /oauth/2026-09/token; 2026-03's does.
    # HubSpot ends /oauth/v1/token on 2027-02-16.
    "2026-09": MappingProxyType({"oauth.token": "/oauth/2026-03/token"}),
    "v3": MappingProxyType({"oauth.token": "/oauth/v1/token"}),
})


def api_path(api_version: str, operation: str) -> str:
    """The resource path of ``operation`` on ``api_version`` (both validated by the settings)."""
    return API_PATHS[api_version][operation]
