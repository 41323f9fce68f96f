"""The 2026-09 family's operations, replayed for ``test_sandbox_openapi.py``.

Each function sends through the test's recorder, which validates the request and the answer
against ``../shared/hubspot-openapi/dbv-2026-09`` and remembers the operation as exercised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ambac_hubspot_plugin.sandbox import Sandbox

Send = Callable[..., Any]

# notes have no spec of their own; the date-based objects path is one generic {objectType}
# path, so their traffic is validated against the deals file's description of it
DATED_OBJECT_SPECS = {
    "deals": "dbv-2026-09/deals.json",
    "companies": "dbv-2026-09/companies.json",
    "contacts": "dbv-2026-09/contacts.json",
    "notes": "dbv-2026-09/deals.json",
}
UNIQUE_PROPERTY = {
    "deals": "ambac_order_id",
    "companies": "ambac_customer_id",
    "contacts": "ambac_customer_id",
    "notes": "ambac_note_key",
}


def _sample(object_type: str, n: int) -> dict[str, str]:
    return {
        "deals": {"dealname": f"Dated deal {n}", "amount": "10.50", "dealstage": "closedwon"},
        "companies": {"name": f"Dated Co {n}", "domain": f"dated{n}.example.com"},
        "contacts": {"email": f"dated{n}@example.com", "firstname": "Dated"},
        "notes": {"hs_note_body": f"Dated note {n}", "hs_timestamp": "2026-01-02T03:04:05.000Z"},
    }[object_type]


def _minimal(object_type: str) -> dict[str, str]:
    """One value only, so some of the default properties stay unset."""
    name = {"deals": "dealname", "companies": "name", "contacts": "email", "notes": "hs_note_body"}
    return {name[object_type]: f"minimal-{object_type}@example.com"}


def exercise_dated_objects(send: Send, object_type: str) -> None:
    """Objects, batches and search on ``/crm/objects/2026-09``, null values and 200-with-errors
    included."""
    spec_file = DATED_OBJECT_SPECS[object_type]
    base = f"/crm/objects/2026-09/{object_type}"
    send(spec_file, "GET", f"{base}?limit=3&properties=createdate,hubspot_owner_id", 200)
    created = send(
        spec_file,
        "POST",
        base,
        201,
        {"properties": _minimal(object_type), "associations": []},
    )
    object_id = created["id"]
    read = send(spec_file, "GET", f"{base}/{object_id}?properties=hubspot_owner_id", 200)
    assert read["properties"]["hubspot_owner_id"] is None  # nullable: null, not left out
    # naming no property answers the default ones, unset ones null even in a write's answer
    patched = send(spec_file, "PATCH", f"{base}/{object_id}", 200, {"properties": {}})
    assert object_type == "notes" or None in patched["properties"].values()
    send(spec_file, "GET", f"{base}/999999999", 404)
    batch = send(
        spec_file,
        "POST",
        f"{base}/batch/create",
        201,
        {
            "inputs": [
                {"properties": _sample(object_type, n), "associations": []} for n in (2, 3)
            ]
        },
    )
    ids = [r["id"] for r in batch["results"]]
    reads = {"properties": ["hubspot_owner_id"], "propertiesWithHistory": []}
    whole = send(
        spec_file, "POST", f"{base}/batch/read", 200, {"inputs": [{"id": i} for i in ids], **reads}
    )
    assert "numErrors" not in whole and len(whole["results"]) == 2
    partial = send(
        spec_file,
        "POST",
        f"{base}/batch/read",
        200,  # 207 in v3; a 200 whose body carries the errors here
        {"inputs": [{"id": ids[0]}, {"id": "1"}], **reads},
    )
    assert partial["numErrors"] == 1 and partial["errors"][0]["context"]["ids"] == ["1"]
    assert [r["properties"]["hubspot_owner_id"] for r in partial["results"]] == [None]
    send(
        spec_file,
        "POST",
        f"{base}/batch/update",
        200,
        {"inputs": [{"id": ids[0], "properties": {"hubspot_owner_id": ""}}]},
    )
    refused = send(
        spec_file,
        "POST",
        f"{base}/batch/update",
        200,
        {"inputs": [{"id": "1", "properties": {"hubspot_owner_id": ""}}]},
    )
    assert refused["numErrors"] == 1 and refused["results"] == []
    unique = UNIQUE_PROPERTY[object_type]
    upserted = send(
        spec_file,
        "POST",
        f"{base}/batch/upsert",
        200,
        {
            "inputs": [
                {
                    "id": f"D-{object_type}",
                    "idProperty": unique,
                    "properties": {unique: f"D-{object_type}"},
                }
            ]
        },
    )
    assert upserted["results"][0]["new"] is True
    send(
        spec_file,
        "POST",
        f"{base}/batch/read",
        400,
        {"inputs": [{"id": str(n)} for n in range(101)], "properties": [], "propertiesWithHistory": []},
    )
    found = send(
        spec_file,
        "POST",
        f"{base}/search",
        200,
        {
            "filterGroups": [
                {"filters": [{"propertyName": "hs_object_id", "operator": "EQ", "value": object_id}]}
            ],
            "sorts": ["hs_object_id"],
            "properties": ["hubspot_owner_id"],
            "limit": 2,
            "after": "0",
        },
    )
    assert found["total"] == 1 and found["results"][0]["properties"]["hubspot_owner_id"] is None
    send(
        spec_file,
        "POST",
        f"{base}/search",
        400,
        {"filterGroups": [], "sorts": [], "properties": [], "limit": 201, "after": "0"},
    )


def exercise_dated_associations(send: Send, hs: Sandbox) -> None:
    """Association batch reads, paged per input past 500 links with each input's ``after``."""
    spec_file = "dbv-2026-09/associations.json"
    path = "/crm/associations/2026-09/deals/contacts/batch/read"
    deal = hs.add_object("deals", {"dealname": "Crowded"})
    contacts = [hs.add_object("contacts", {"email": f"crowd{n}@example.com"}) for n in range(520)]
    for contact in contacts:
        hs.associate("deals", deal, "contacts", contact, 3)
    lonely = hs.add_object("deals", {"dealname": "Lonely"})
    hs.associate("deals", lonely, "contacts", contacts[0], 3)
    first = send(spec_file, "POST", path, 200, {"inputs": [{"id": deal}, {"id": lonely}]})
    by_deal = {r["from"]["id"]: r for r in first["results"]}
    assert len(by_deal[deal]["to"]) == 500 and "paging" not in by_deal[lonely]
    after = by_deal[deal]["paging"]["next"]["after"]
    rest = send(spec_file, "POST", path, 200, {"inputs": [{"id": deal, "after": after}]})
    assert "paging" not in rest["results"][0]
    seen = [link["toObjectId"] for r in (by_deal[deal], rest["results"][0]) for link in r["to"]]
    assert sorted(seen) == sorted(contacts)
    missing = send(spec_file, "POST", path, 200, {"inputs": [{"id": lonely}, {"id": "1"}]})
    assert missing["numErrors"] == 1 and len(missing["results"]) == 1


def exercise_dated_pipelines_and_properties(send: Send) -> None:
    """Pipelines and properties on their 2026-09 paths, over the same state as v3."""
    spec_file = "dbv-2026-09/pipelines.json"
    listed = send(spec_file, "GET", "/crm/pipelines/2026-09/deals", 200)
    assert any(p["id"] == "default" for p in listed["results"])
    send(spec_file, "GET", "/crm/pipelines/2026-09/deals/default", 200)
    send(spec_file, "GET", "/crm/pipelines/2026-09/deals/nope", 404)
    spec_file = "dbv-2026-09/properties.json"
    base = "/crm/properties/2026-09/deals"
    send(spec_file, "GET", base, 200)
    send(spec_file, "GET", f"{base}/groups", 200)
    group = {"name": "ambac_dated", "label": "Ambac Tracker (dated)", "displayOrder": -1}
    send(spec_file, "POST", f"{base}/groups", 201, group)
    send(spec_file, "POST", f"{base}/groups", 409, group)
    send(spec_file, "GET", f"{base}/groups/ambac_dated", 200)
    prop = {
        "name": "ambac_dated_status",
        "label": "Order status",
        "type": "enumeration",
        "fieldType": "select",
        "groupName": "ambac_dated",
        "options": [{"label": "Open", "value": "open", "hidden": False, "displayOrder": 0}],
    }
    send(spec_file, "POST", base, 201, prop)
    send(spec_file, "POST", base, 409, prop)
    send(spec_file, "GET", f"{base}/ambac_dated_status", 200)
    send(spec_file, "GET", f"{base}/nope", 404)
    # one state: what the 2026-09 path created, the v3 path reads
    send("properties.json", "GET", "/crm/v3/properties/deals/ambac_dated_status", 200)
