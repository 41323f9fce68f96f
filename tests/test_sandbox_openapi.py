"""Fidelity: every operation the sandbox serves is replayed and validated against HubSpot's specs.

Requests and answers (success, 207 partial and error bodies) go through openapi-core with the
official HubSpot OpenAPI files found next to the repository (``../shared/hubspot-openapi``): the
v3/v4 family against the top-level files, the 2026-09 family against ``dbv-2026-09``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from ambac_hubspot_plugin.sandbox import SERVED_OPERATIONS, RateLimits, Sandbox
from ambac_hubspot_plugin.sandbox._families import ACCOUNT_OPERATIONS

from ._openapi_dated import (
    DATED_OBJECT_SPECS,
    exercise_dated_associations,
    exercise_dated_objects,
    exercise_dated_pipelines_and_properties,
)
from ._openapi_support import exchange, require_specs

# the file describing each path family; deals use the last spec with named /deals paths
OBJECT_SPECS = {
    "deals": "deals-v3-named-paths-2025-08-01/deals.json",
    "0-3": "deals.json",
    "companies": "companies.json",
    "contacts": "contacts.json",
}
_TEMPLATES = [
    (method, re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path)
    for method, path in SERVED_OPERATIONS
]


def template_of(method: str, path: str) -> tuple[str, str]:
    """The SERVED_OPERATIONS entry a concrete request matches."""
    bare = path.split("?", 1)[0]
    matches = [
        (m, template) for m, pattern, template in _TEMPLATES if m == method and pattern.match(bare)
    ]
    # the most specific template wins (e.g. /batch/read over /{objectId})
    return max(matches, key=lambda item: item[1].count("/") - item[1].count("{"))


@pytest.fixture
def hs() -> Iterator[Sandbox]:
    require_specs()
    with Sandbox(rate_limits=RateLimits.unlimited()) as sandbox:
        sandbox.seed(companies=5, contacts=10, deals=20, seed=5)
        sandbox.add_property("contacts", "ambac_customer_id", has_unique_value=True)
        sandbox.add_property("companies", "ambac_customer_id", has_unique_value=True)
        sandbox.add_property("deals", "ambac_order_id", has_unique_value=True)
        sandbox.add_property("notes", "ambac_note_key", has_unique_value=True)
        yield sandbox


class Recorder:
    """Sends through :func:`exchange` and remembers which served operations were exercised."""

    def __init__(self, hs: Sandbox) -> None:
        self.hs = hs
        self.exercised: set[tuple[str, str]] = set()

    def __call__(
        self, spec_file: str, method: str, path: str, status: int, body: Any = None, **kwargs: Any
    ) -> Any:
        kwargs.setdefault("token", self.hs.access_token)
        response = exchange(self.hs.base_url, spec_file, method, path, body=body, **kwargs)
        assert response.status_code == status, (method, path, response.text[:500])
        self.exercised.add(template_of(method, path))
        return response.json() if response.content else None


def _sample_properties(object_type: str, n: int) -> dict[str, str]:
    return {
        "deals": {"dealname": f"Spec deal {n}", "amount": "10.50", "dealstage": "closedwon"},
        "0-3": {"dealname": f"Spec deal {n}", "pipeline": "default", "dealstage": "contractsent"},
        "companies": {"name": f"Spec Co {n}", "domain": f"spec{n}.example.com"},
        "contacts": {"email": f"spec{n}@example.com", "firstname": "Spec"},
    }[object_type]


def _unique_property(object_type: str) -> str:
    return "ambac_order_id" if object_type in ("deals", "0-3") else "ambac_customer_id"


def exercise_objects(send: Recorder, object_type: str) -> None:
    spec_file = OBJECT_SPECS[object_type]
    base = f"/crm/v3/objects/{object_type}"
    send(spec_file, "GET", f"{base}?limit=3&properties=createdate&archived=false", 200)
    created = send(
        spec_file,
        "POST",
        base,
        201,
        {"properties": _sample_properties(object_type, 1), "associations": []},
    )
    object_id = created["id"]
    send(spec_file, "GET", f"{base}/{object_id}?properties=hs_object_id", 200)
    send(spec_file, "PATCH", f"{base}/{object_id}", 200, {"properties": {"hubspot_owner_id": ""}})
    send(spec_file, "GET", f"{base}/999999999", 404)
    batch = send(
        spec_file,
        "POST",
        f"{base}/batch/create",
        201,
        {
            "inputs": [
                {"properties": _sample_properties(object_type, n), "associations": []}
                for n in (2, 3)
            ]
        },
    )
    ids = [r["id"] for r in batch["results"]]
    send(
        spec_file,
        "POST",
        f"{base}/batch/read",
        200,
        {
            "inputs": [{"id": i} for i in ids],
            "properties": ["createdate"],
            "propertiesWithHistory": [],
        },
    )
    send(
        spec_file,
        "POST",
        f"{base}/batch/read",
        207,
        {
            "inputs": [{"id": ids[0]}, {"id": "1"}],
            "properties": ["createdate"],
            "propertiesWithHistory": [],
        },
    )
    send(
        spec_file,
        "POST",
        f"{base}/batch/update",
        200,
        {"inputs": [{"id": ids[0], "properties": {"hubspot_owner_id": ""}}]},
    )
    send(
        spec_file,
        "POST",
        f"{base}/batch/update",
        207,
        {"inputs": [{"id": "1", "properties": {"hubspot_owner_id": ""}}]},
    )
    unique = _unique_property(object_type)
    send(
        spec_file,
        "POST",
        f"{base}/batch/upsert",
        200,
        {
            "inputs": [
                {
                    "id": f"U-{object_type}",
                    "idProperty": unique,
                    "properties": {unique: f"U-{object_type}"},
                }
            ]
        },
    )
    send(
        spec_file,
        "POST",
        f"{base}/batch/read",
        400,
        {
            "inputs": [{"id": str(n)} for n in range(101)],
            "properties": [],
            "propertiesWithHistory": [],
        },
    )
    send(
        spec_file,
        "POST",
        f"{base}/search",
        200,
        {
            "filterGroups": [
                {"filters": [{"propertyName": "createdate", "operator": "GT", "value": "0"}]}
            ],
            "sorts": ["createdate"],
            "properties": ["createdate"],
            "limit": 2,
            "after": "0",
        },
    )
    send(
        spec_file,
        "POST",
        f"{base}/search",
        400,
        {"filterGroups": [], "sorts": [], "properties": [], "limit": 201, "after": "0"},
    )
    send(
        spec_file,
        "POST",
        f"{base}/merge",
        200,
        {"primaryObjectId": ids[0], "objectIdToMerge": ids[1]},
    )
    send(spec_file, "DELETE", f"{base}/{object_id}", 204)
    send(spec_file, "POST", f"{base}/batch/archive", 204, {"inputs": [{"id": ids[0]}]})


def exercise_associations(send: Recorder, hs: Sandbox) -> None:
    spec_file = "associations.json"
    deal = hs.add_object("deals", {"dealname": "Assoc"})
    company = hs.add_object("companies", {"name": "Assoc Co"})
    contact = hs.add_object("contacts", {"email": "assoc@example.com"})
    send(
        spec_file,
        "PUT",
        f"/crm/v4/objects/deals/{deal}/associations/default/companies/{company}",
        200,
    )
    send(
        spec_file,
        "POST",
        "/crm/v4/associations/deals/companies/batch/create",
        201,
        {
            "inputs": [
                {
                    "from": {"id": deal},
                    "to": {"id": company},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}],
                }
            ]
        },
    )
    send(
        spec_file,
        "POST",
        "/crm/v4/associations/deals/contacts/batch/create",
        207,
        {
            "inputs": [
                {
                    "from": {"id": deal},
                    "to": {"id": "1"},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}],
                }
            ]
        },
    )
    hs.associate("deals", deal, "contacts", contact, 3)
    send(
        spec_file,
        "POST",
        "/crm/v4/associations/deals/companies/batch/read",
        200,
        {"inputs": [{"id": deal}]},
    )
    send(
        spec_file,
        "POST",
        "/crm/v4/associations/0-3/0-1/batch/read",
        207,
        {"inputs": [{"id": deal}, {"id": "1"}]},
    )
    exercise_association_paging(send, hs)


def exercise_association_paging(send: Recorder, hs: Sandbox) -> None:
    """A v4 batch read pages a deal's 520 contacts at 500; the per-object GET continues it."""
    spec_file = "associations.json"
    deal = hs.add_object("deals", {"dealname": "Crowded v4"})
    contacts = [hs.add_object("contacts", {"email": f"v4crowd{n}@example.com"}) for n in range(520)]
    for contact in contacts:
        hs.associate("deals", deal, "contacts", contact, 3)
    first = send(
        spec_file,
        "POST",
        "/crm/v4/associations/deals/contacts/batch/read",
        200,
        {"inputs": [{"id": deal}]},
    )["results"][0]
    assert len(first["to"]) == 500
    path = f"/crm/v4/objects/deals/{deal}/associations/contacts"
    rest = send(spec_file, "GET", f"{path}?after={first['paging']['next']['after']}&limit=500", 200)
    assert "paging" not in rest
    seen = [link["toObjectId"] for link in first["to"] + rest["results"]]
    assert sorted(seen) == sorted(contacts)
    paged = send(spec_file, "GET", f"{path}?limit=10", 200)
    assert len(paged["results"]) == 10 and paged["paging"]["next"]["after"]
    send(spec_file, "GET", f"{path}?limit=501", 400)
    send(spec_file, "GET", "/crm/v4/objects/deals/1/associations/contacts", 404)


def exercise_pipelines_and_properties(send: Recorder) -> None:
    send("pipelines.json", "GET", "/crm/v3/pipelines/deals", 200)
    send("pipelines.json", "GET", "/crm/v3/pipelines/deals/default", 200)
    send("pipelines.json", "GET", "/crm/v3/pipelines/deals/nope", 404)
    spec_file = "properties.json"
    send(spec_file, "GET", "/crm/v3/properties/deals", 200)
    send(spec_file, "GET", "/crm/v3/properties/deals/groups", 200)
    group = {"name": "ambac", "label": "Ambac Tracker", "displayOrder": -1}
    send(spec_file, "POST", "/crm/v3/properties/deals/groups", 201, group)
    send(spec_file, "POST", "/crm/v3/properties/deals/groups", 409, group)
    send(spec_file, "GET", "/crm/v3/properties/deals/groups/ambac", 200)
    prop = {
        "name": "ambac_status",
        "label": "Order status",
        "type": "enumeration",
        "fieldType": "select",
        "groupName": "ambac",
        "options": [{"label": "Open", "value": "open", "hidden": False, "displayOrder": 0}],
    }
    send(spec_file, "POST", "/crm/v3/properties/deals", 201, prop)
    send(spec_file, "POST", "/crm/v3/properties/deals", 409, prop)
    send(spec_file, "GET", "/crm/v3/properties/deals/ambac_status", 200)
    send(spec_file, "GET", "/crm/v3/properties/deals/nope", 404)


def exercise_oauth(send: Recorder, hs: Sandbox) -> None:
    hs.add_oauth_app("spec-client", "spec-secret", "spec-refresh")
    form = {
        "grant_type": "refresh_token",
        "client_id": "spec-client",
        "client_secret": "spec-secret",
        "refresh_token": "spec-refresh",
    }
    token = send("oauth.json", "POST", "/oauth/v1/token", 200, form=form, token=None)
    assert token["token_type"] == "bearer"
    send(
        "oauth.json",
        "POST",
        "/oauth/v1/token",
        400,
        form={**form, "refresh_token": "wrong"},
        token=None,
    )
    dated = "dbv-2026-03/oauth.json"
    token = send(dated, "POST", "/oauth/2026-03/token", 200, form=form, token=None)
    assert token["token_use"] == "access_token"
    refused = send(
        dated, "POST", "/oauth/2026-03/token", 400, form={**form, "client_secret": "x"}, token=None
    )
    assert refused["error"] == "invalid_client"


def test_every_served_operation_matches_the_specs(hs: Sandbox) -> None:
    """Each served operation's requests and answers (2xx, 207, 4xx) validate against HubSpot's
    specs.
    """
    send = Recorder(hs)
    for object_type in OBJECT_SPECS:
        exercise_objects(send, object_type)
    exercise_associations(send, hs)
    exercise_pipelines_and_properties(send)
    exercise_oauth(send, hs)
    for object_type in DATED_OBJECT_SPECS:
        exercise_dated_objects(send, object_type)
    exercise_dated_associations(send, hs)
    exercise_dated_pipelines_and_properties(send)
    # The account details' spec is not among the shared ones (tests/test_portal_check.py reads them).
    assert send.exercised == set(SERVED_OPERATIONS) - set(ACCOUNT_OPERATIONS)


def test_unserved_dated_operations_answer_404(hs: Sandbox) -> None:
    """A 2026-09 path whose v3 twin is served but which is not itself served answers a 404
    ``Error``."""
    for method, path in (
        ("DELETE", "/crm/objects/2026-09/deals/1"),
        ("POST", "/crm/objects/2026-09/deals/merge"),
    ):
        answer = exchange(
            hs.base_url, "dbv-2026-09/deals.json", method, path, token=hs.access_token,
            body={"primaryObjectId": "1", "objectIdToMerge": "2"} if method == "POST" else None,
        )
        assert answer.status_code == 404, (method, path)


def test_auth_and_rate_limit_errors_match_the_error_schema() -> None:
    """401 and 429 answers validate as the specs' ``Error`` responses."""
    require_specs()
    with Sandbox(rate_limits=RateLimits(burst_per_10s=1, retry_after=True)) as hs:
        spec_file = OBJECT_SPECS["deals"]
        for token in (None, "wrong"):
            answer = exchange(hs.base_url, spec_file, "GET", "/crm/v3/objects/deals", token=token)
            assert answer.status_code == 401
        exchange(hs.base_url, spec_file, "GET", "/crm/v3/objects/deals", token=hs.access_token)
        limited = exchange(
            hs.base_url, spec_file, "GET", "/crm/v3/objects/deals", token=hs.access_token
        )
        assert limited.status_code == 429
        assert limited.json()["policyName"] == "TEN_SECONDLY_ROLLING"


def test_specs_really_reject_a_wrong_answer() -> None:
    """The validation is live: an answer missing required fields fails against the spec."""
    require_specs()
    from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
    from openapi_core.validation.response.exceptions import InvalidData

    from ._openapi_support import PUBLIC_HOST, spec

    request = requests.Request("GET", PUBLIC_HOST + "/crm/v3/objects/deals/1").prepare()
    response = requests.Response()
    response.status_code = 200
    response._content = b'{"id": "1"}'
    response.headers["Content-Type"] = "application/json"
    with pytest.raises(InvalidData):
        spec(OBJECT_SPECS["deals"]).validate_response(
            RequestsOpenAPIRequest(request), RequestsOpenAPIResponse(response)
        )


@pytest.mark.parametrize(
    ("corrupt", "status"),
    [
        (lambda body: {k: v for k, v in body.items() if k != "status"}, 200),  # required field
        (lambda body: {**body, "numErrors": "one"}, 200),  # wrong type
        (lambda body: body, 207),  # the v3 status: no 207 in 2026-09
    ],
    ids=["missing-status", "numErrors-not-integer", "status-207"],
)
def test_dated_specs_reject_a_corrupted_served_answer(
    hs: Sandbox, corrupt: Any, status: int
) -> None:
    """A real 2026-09 batch answer validates, and the same answer corrupted fails validation."""
    import json

    from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse
    from openapi_core.validation.response.exceptions import InvalidData

    from ._openapi_support import PUBLIC_HOST, spec

    spec_file = DATED_OBJECT_SPECS["deals"]
    body = {"inputs": [{"id": "1"}], "properties": [], "propertiesWithHistory": []}
    served = exchange(
        hs.base_url, spec_file, "POST", "/crm/objects/2026-09/deals/batch/read",
        token=hs.access_token, body=body,
    )  # validated: passes as served
    assert served.json()["numErrors"] == 1
    request = requests.Request(
        "POST", PUBLIC_HOST + "/crm/objects/2026-09/deals/batch/read", json=body
    ).prepare()
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(corrupt(served.json())).encode()
    response.headers["Content-Type"] = "application/json"
    with pytest.raises(InvalidData):
        spec(spec_file).validate_response(
            RequestsOpenAPIRequest(request), RequestsOpenAPIResponse(response)
        )
