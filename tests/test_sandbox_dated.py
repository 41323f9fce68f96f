"""The sandbox's 2026-09 paths: one state with v3/v4, and the 2026-09 answer shapes.

These run without HubSpot's specs; ``test_sandbox_openapi.py`` validates the same operations
against them when they are present.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox


@pytest.fixture
def hs() -> Iterator[Sandbox]:
    with Sandbox(rate_limits=RateLimits.unlimited()) as sandbox:
        yield sandbox


def call(hs: Sandbox, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(
        method,
        hs.base_url + path,
        headers={"Authorization": f"Bearer {hs.access_token}"},
        json=body,
        timeout=10,
    )


def test_both_families_share_one_state(hs: Sandbox) -> None:
    """A deal created on the 2026-09 path is read and updated on v3, and the reverse."""
    created = call(hs, "POST", "/crm/objects/2026-09/deals", {"properties": {"dealname": "A"}})
    assert created.status_code == 201
    deal = created.json()["id"]
    patched = call(hs, "PATCH", f"/crm/v3/objects/deals/{deal}", {"properties": {"amount": "5"}})
    assert patched.status_code == 200
    read = call(hs, "GET", f"/crm/objects/2026-09/deals/{deal}?properties=amount,dealname")
    assert read.json()["properties"]["amount"] == "5"
    assert read.json()["properties"]["dealname"] == "A"


def test_partial_batch_is_200_with_errors_on_2026_09_and_207_on_v3(hs: Sandbox) -> None:
    """A batch read with an unknown id answers 200 with ``errors``/``numErrors`` on 2026-09,
    where v3 answers 207 with the same body."""
    deal = hs.add_object("deals", {"dealname": "Known"})
    body = {"inputs": [{"id": deal}, {"id": "1"}], "properties": [], "propertiesWithHistory": []}
    dated = call(hs, "POST", "/crm/objects/2026-09/deals/batch/read", body)
    legacy = call(hs, "POST", "/crm/v3/objects/deals/batch/read", body)
    assert (dated.status_code, legacy.status_code) == (200, 207)
    for answer in (dated.json(), legacy.json()):
        assert answer["numErrors"] == 1
        assert answer["errors"][0]["context"]["ids"] == ["1"]
        assert [r["id"] for r in answer["results"]] == [deal]


def test_write_answers_keep_nulls_on_2026_09_and_drop_them_on_v3(hs: Sandbox) -> None:
    """Default properties without a value answer null in a 2026-09 write answer and are left
    out of the v3 one."""
    deal = hs.add_object("deals", {"dealname": "Bare"})
    dated = call(hs, "PATCH", f"/crm/objects/2026-09/deals/{deal}", {"properties": {}})
    legacy = call(hs, "PATCH", f"/crm/v3/objects/deals/{deal}", {"properties": {}})
    assert dated.json()["properties"]["amount"] is None
    assert "amount" not in legacy.json()["properties"]


def test_association_reads_page_past_500_per_input_on_2026_09(hs: Sandbox) -> None:
    """A 2026-09 association batch read gives 500 links and a cursor; resending the input with
    that ``after`` gives the rest. v4 pages the same way, on the same cursor."""
    deal = hs.add_object("deals", {"dealname": "Crowded"})
    contacts = [hs.add_object("contacts", {"email": f"c{n}@example.com"}) for n in range(501)]
    for contact in contacts:
        hs.associate("deals", deal, "contacts", contact, 3)
    path = "/crm/associations/2026-09/deals/contacts/batch/read"
    first = call(hs, "POST", path, {"inputs": [{"id": deal}]}).json()["results"][0]
    assert len(first["to"]) == 500
    after = first["paging"]["next"]["after"]
    rest = call(hs, "POST", path, {"inputs": [{"id": deal, "after": after}]}).json()["results"][0]
    assert "paging" not in rest
    assert sorted(t["toObjectId"] for t in first["to"] + rest["to"]) == sorted(contacts)
    legacy = call(hs, "POST", "/crm/v4/associations/deals/contacts/batch/read", {"inputs": [{"id": deal}]})
    assert legacy.json()["results"][0]["to"] == first["to"]
    assert legacy.json()["results"][0]["paging"] == first["paging"]
    for cursor in ("x", "\u00b2"):  # the second is a digit to str.isdigit, but not 0-9
        bad = call(hs, "POST", path, {"inputs": [{"id": deal, "after": cursor}]})
        assert bad.status_code == 400


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/crm/objects/2026-09/deals/3000001"),
        ("POST", "/crm/objects/2026-09/deals/batch/archive"),
        ("POST", "/crm/associations/2026-09/deals/contacts/batch/create"),
        ("GET", "/crm/objects/2026-10/deals"),
    ],
)
def test_unserved_date_based_operations_are_404(hs: Sandbox, method: str, path: str) -> None:
    """Date-based operations the sandbox does not serve answer 404, even when their v3/v4 twin
    is served."""
    hs.add_object("deals", {"dealname": "Kept"})
    answer = call(hs, method, path, {"inputs": []} if method == "POST" else None)
    assert answer.status_code == 404
    assert hs.portal.find("deals", "3000001") is not None
