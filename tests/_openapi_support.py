"""Validate sandbox traffic against HubSpot's official OpenAPI specs (kept outside the repo).

The specs are proprietary: they are read from ``../shared/hubspot-openapi`` next to the
repository and never copied into it. Tests skip with a reason when that folder is absent.
"""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
from openapi_core.validation.response.exceptions import MissingData

SPEC_DIR = Path(__file__).resolve().parents[2] / "shared" / "hubspot-openapi"
PUBLIC_HOST = "https://api.hubapi.com"


def require_specs() -> Path:
    """The spec folder, or skip the calling test with the reason."""
    if not (SPEC_DIR / "SOURCE.txt").exists():
        pytest.skip(f"HubSpot OpenAPI specs not found at {SPEC_DIR} (they are not redistributable)")
    return SPEC_DIR


def _json(value: bytes | str, **_parameters: str) -> Any:
    return json.loads(value)


@functools.cache
def spec(relative: str) -> OpenAPI:
    """One parsed spec file, loaded once per test session."""
    # HubSpot declares error bodies as */*; they are JSON, so read them as JSON
    config = Config(extra_media_type_deserializers={"*/*": _json})
    return OpenAPI.from_file_path(str(require_specs() / relative), config=config)


def exchange(
    base_url: str,
    spec_file: str,
    method: str,
    path: str,
    *,
    token: str | None,
    body: Any = None,
    form: dict[str, str] | None = None,
) -> requests.Response:
    """Send one request to the sandbox; validate it and its answer against ``spec_file``.  The
    request is validated as if it went to HubSpot's public host, because the specs list only that
    server; the same prepared request then goes to the sandbox.
    """
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    prepared = requests.Request(
        method, PUBLIC_HOST + path, json=body, data=form, headers=headers
    ).prepare()
    openapi = spec(spec_file)
    validation_request = RequestsOpenAPIRequest(prepared)
    with warnings.catch_warnings():
        # openapi-core cannot check the oauth2 scheme and warns; auth is tested elsewhere
        warnings.filterwarnings("ignore", "Unsupported scheme type", UserWarning)
        openapi.validate_request(validation_request)
    prepared.url = str(prepared.url).replace(PUBLIC_HOST, base_url, 1)
    with requests.Session() as session:
        response = session.send(prepared, timeout=10)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Unsupported scheme type", UserWarning)
        try:
            openapi.validate_response(validation_request, RequestsOpenAPIResponse(response))
        except MissingData:
            # the specs declare 204 with an empty "content" map, which openapi-core reads as
            # "a body is required"; an empty 204 is exactly what HubSpot sends
            if response.status_code != 204 or response.content:
                raise
    return response


def _sent(method: str, path: str, body: bytes, headers: dict[str, str]) -> RequestsOpenAPIRequest:
    """A request a client really sent, as if it went to HubSpot's public host."""
    prepared = requests.Request(method, PUBLIC_HOST + path, data=body or None, headers=headers)
    return RequestsOpenAPIRequest(prepared.prepare())


def validate_sent_request(
    spec_file: str, method: str, path: str, body: bytes, headers: dict[str, str]
) -> None:
    """Validate one request a client really sent (``path`` with query) against ``spec_file``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Unsupported scheme type", UserWarning)
        spec(spec_file).validate_request(_sent(method, path, body, headers))


def validate_exchange(
    spec_file: str,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    answer_headers: dict[str, str],
    answer: bytes,
) -> None:
    """Validate one recorded exchange, the request a client sent (``path`` with query) and the
    answer it got, against ``spec_file``."""
    validate_sent_request(spec_file, method, path, body, headers)
    response = requests.Response()
    response.status_code = status
    response.headers.update(answer_headers)
    response._content = answer  # a recorded answer: requests has no public constructor for it
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Unsupported scheme type", UserWarning)
        try:
            spec(spec_file).validate_response(
                _sent(method, path, body, headers), RequestsOpenAPIResponse(response)
            )
        except MissingData:
            if status != 204 or answer:
                raise
