"""The sandbox's CRM surface through the real hubspot SDK and raw HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import requests
from hubspot import HubSpot
from hubspot.crm.associations.v4 import BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.deals import (
    ApiException,
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)

from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

from ._clock import ManualClock as FakeClock


@pytest.fixture
def client(hs: Sandbox) -> HubSpot:
    return HubSpot(access_token=hs.access_token, host=hs.base_url)


def raw(hs: Sandbox, method: str, path: str, **kwargs: object) -> requests.Response:
    headers = {"Authorization": f"Bearer {hs.access_token}"}
    return requests.request(method, hs.base_url + path, headers=headers, timeout=5, **kwargs)  # type: ignore[arg-type]


def search_body(**kwargs: object) -> dict[str, object]:
    return {"filterGroups": [], "limit": 10, **kwargs}


# ------------------------------------------------------------------------- CRUD
def test_create_get_update_archive_round_trip(
    hs: Sandbox, client: HubSpot, clock: FakeClock
) -> None:
    """A deal created through the SDK can be read, updated (bumping hs_lastmodifieddate) and
    archived (then 404).
    """
    api = client.crm.deals.basic_api
    created = api.create(
        SimplePublicObjectInputForCreate(
            properties={"dealname": "Bracket order", "amount": "1500.50", "dealstage": "closedwon"}
        )
    )
    assert created.properties["hs_object_id"] == created.id
    assert created.properties["createdate"] == "2026-03-02T09:30:00.000Z"
    clock.advance(60)
    updated = api.update(created.id, SimplePublicObjectInput(properties={"amount": "2000"}))
    assert updated.properties["amount"] == "2000"
    assert updated.properties["hs_lastmodifieddate"] == "2026-03-02T09:31:00.000Z"
    fetched = api.get_by_id(created.id, properties=["dealname", "pipeline"])
    assert fetched.properties["dealname"] == "Bracket order"
    assert fetched.properties["pipeline"] == "default"
    assert "amount" not in fetched.properties
    api.archive(created.id)
    with pytest.raises(ApiException) as caught:
        api.get_by_id(created.id)
    assert caught.value.status == 404
    archived = api.get_by_id(created.id, archived=True)
    assert archived.archived is True


def test_default_properties_and_nulls_for_unset_requested(hs: Sandbox) -> None:
    """Without ``properties`` a GET returns HubSpot's defaults; asked-for unset properties come back
    as null.
    """
    deal_id = hs.add_object("deals", {"dealname": "N"})
    default = raw(hs, "GET", f"/crm/v3/objects/deals/{deal_id}").json()
    assert set(default["properties"]) == {
        "amount",
        "closedate",
        "createdate",
        "dealname",
        "dealstage",
        "hs_lastmodifieddate",
        "hs_object_id",
        "pipeline",
    }
    asked = raw(hs, "GET", f"/crm/v3/objects/0-3/{deal_id}?properties=amount,nope").json()
    assert asked["properties"]["amount"] is None
    assert "nope" not in asked["properties"]


def test_contacts_use_lastmodifieddate(hs: Sandbox) -> None:
    """Contacts carry ``lastmodifieddate`` (not ``hs_lastmodifieddate``), as in HubSpot."""
    contact_id = hs.add_object("contacts", {"email": "a@b.com"})
    props = raw(hs, "GET", f"/crm/v3/objects/contacts/{contact_id}").json()["properties"]
    assert "lastmodifieddate" in props
    assert "hs_lastmodifieddate" not in props


def test_invalid_values_are_rejected_like_hubspot(hs: Sandbox) -> None:
    """Unknown properties, non-numeric amounts, unknown stages and non-midnight dates get 400
    VALIDATION_ERROR.
    """
    hs.add_property("deals", "ship_date", type_="date", field_type="date")
    for props in (
        {"nope": "1"},
        {"amount": "12abc"},
        {"dealstage": "no_such_stage"},
        {"ship_date": "2026-01-05T10:00:00Z"},
        {"hs_object_id": "5"},
    ):
        answer = raw(hs, "POST", "/crm/v3/objects/deals", json={"properties": props})
        assert answer.status_code == 400, props
        assert answer.json()["category"] == "VALIDATION_ERROR"
    ok = raw(
        hs, "POST", "/crm/v3/objects/deals", json={"properties": {"ship_date": "1767571200000"}}
    )
    assert ok.json()["properties"]["ship_date"] == "2026-01-05"


def test_list_paging_and_limit(hs: Sandbox, client: HubSpot) -> None:
    """GET list pages by ``after`` through every record exactly once; limit above 100 is a 400."""
    hs.seed(companies=3, contacts=3, deals=25, seed=3)
    seen, after = [], None
    while True:
        page = client.crm.deals.basic_api.get_page(limit=10, after=after)
        seen += [deal.id for deal in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
    assert len(seen) == len(set(seen)) == 25
    assert raw(hs, "GET", "/crm/v3/objects/deals?limit=101").status_code == 400


def test_get_by_unique_id_property(hs: Sandbox) -> None:
    """``idProperty`` reads a record by a property with ``hasUniqueValue`` (email is case-
    insensitive).
    """
    contact_id = hs.add_object("contacts", {"email": "Buyer@Example.com"})
    answer = raw(hs, "GET", "/crm/v3/objects/contacts/buyer@example.com?idProperty=email")
    assert answer.status_code == 200
    assert answer.json()["id"] == contact_id
    assert raw(hs, "GET", "/crm/v3/objects/contacts/x@y.z?idProperty=firstname").status_code == 400


# ------------------------------------------------------------------------ batches
def test_batch_read_reports_missing_ids_with_207(hs: Sandbox, client: HubSpot) -> None:
    """Batch read answers 207 with an OBJECT_NOT_FOUND error naming the unknown ids."""
    deal_id = hs.add_object("deals", {"dealname": "A"})
    answer = client.crm.deals.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[{"id": deal_id}, {"id": "999"}],
            properties=["dealname"],
            properties_with_history=[],
        )
    )
    assert [r.id for r in answer.results] == [deal_id]
    assert answer.errors[0].context == {"ids": ["999"]}
    assert (
        raw(
            hs,
            "POST",
            "/crm/v3/objects/deals/batch/read",
            json={"inputs": [{"id": deal_id}], "properties": []},
        ).status_code
        == 200
    )


def test_batch_limits_are_100_inputs(hs: Sandbox) -> None:
    """Every object batch endpoint rejects more than 100 inputs with HubSpot's 400 error body."""
    inputs = [{"id": str(i), "properties": {}} for i in range(101)]
    for operation in ("read", "create", "update", "upsert", "archive"):
        answer = raw(
            hs, "POST", f"/crm/v3/objects/deals/batch/{operation}", json={"inputs": inputs}
        )
        assert answer.status_code == 400, operation
        body = answer.json()
        assert body["status"] == "error"
        assert body["category"] == "VALIDATION_ERROR"
        assert body["correlationId"]


def test_batch_create_update_and_207_for_unknown(hs: Sandbox, client: HubSpot) -> None:
    """Batch create returns 201 records; batch update changes known ids and reports unknown ones in
    207.
    """
    created = client.crm.deals.batch_api.create(
        BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[{"properties": {"dealname": f"D{i}"}} for i in range(3)]
        )
    )
    ids = [r.id for r in created.results]
    assert len(ids) == 3
    answer = raw(
        hs,
        "POST",
        "/crm/v3/objects/deals/batch/update",
        json={
            "inputs": [
                {"id": ids[0], "properties": {"amount": "5"}},
                {"id": "42", "properties": {"amount": "6"}},
            ]
        },
    )
    assert answer.status_code == 207
    assert answer.json()["errors"][0]["context"]["ids"] == ["42"]
    assert hs.get_object("deals", ids[0])["amount"] == "5"
    client.crm.deals.batch_api.update(
        BatchInputSimplePublicObjectBatchInput(
            inputs=[{"id": ids[1], "properties": {"amount": "7"}}]
        )
    )
    assert hs.get_object("deals", ids[1])["amount"] == "7"


def test_batch_upsert_by_unique_property(hs: Sandbox, client: HubSpot) -> None:
    """Upsert by a ``hasUniqueValue`` property creates unknown values and updates known ones."""
    hs.add_property("deals", "ambac_order_id", has_unique_value=True)
    first = client.crm.deals.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                {"id": "SO-1", "idProperty": "ambac_order_id", "properties": {"dealname": "one"}}
            ]
        )
    )
    assert first.results[0].new is True
    second = client.crm.deals.batch_api.upsert(
        BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                {"id": "SO-1", "idProperty": "ambac_order_id", "properties": {"dealname": "uno"}},
                {"id": "SO-2", "idProperty": "ambac_order_id", "properties": {"dealname": "two"}},
            ]
        )
    )
    assert [r.new for r in second.results] == [False, True]
    assert second.results[0].id == first.results[0].id
    assert hs.get_object("deals", first.results[0].id)["dealname"] == "uno"
    bad = raw(
        hs,
        "POST",
        "/crm/v3/objects/deals/batch/upsert",
        json={"inputs": [{"id": "x", "idProperty": "dealname", "properties": {}}]},
    )
    assert bad.status_code == 400


def test_batch_archive(hs: Sandbox) -> None:
    """Batch archive answers 204 and the records disappear from reads."""
    ids = [hs.add_object("deals", {"dealname": str(i)}) for i in range(2)]
    answer = raw(
        hs, "POST", "/crm/v3/objects/deals/batch/archive", json={"inputs": [{"id": i} for i in ids]}
    )
    assert answer.status_code == 204
    assert hs.get_object("deals", ids[0]) is None


def test_unique_email_conflict(hs: Sandbox) -> None:
    """Creating a second contact with an existing email (any case) is a 409 CONFLICT."""
    hs.add_object("contacts", {"email": "dup@example.com"})
    answer = raw(
        hs, "POST", "/crm/v3/objects/contacts", json={"properties": {"email": "DUP@example.com"}}
    )
    assert answer.status_code == 409
    assert answer.json()["category"] == "CONFLICT"


# ------------------------------------------------------------------------- search
def test_search_operators(hs: Sandbox) -> None:
    """Each operator filters as HubSpot's does, numbers numerically and datetimes by instant."""
    hs.add_object("deals", {"dealname": "a", "amount": "9", "closedate": "2026-01-01T00:00:00Z"})
    hs.add_object("deals", {"dealname": "b", "amount": "10", "closedate": "2026-02-01T00:00:00Z"})
    hs.add_object("deals", {"dealname": "c", "amount": "100"})
    hs.add_object("deals", {"dealname": "d", "amount": ""})

    def names(*filters: dict[str, object]) -> list[str]:
        body = search_body(
            filterGroups=[{"filters": list(filters)}],
            properties=["dealname"],
            sorts=[{"propertyName": "dealname", "direction": "ASCENDING"}],
        )
        return [
            r["properties"]["dealname"]
            for r in raw(hs, "POST", "/crm/v3/objects/deals/search", json=body).json()["results"]
        ]

    jan = str(int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000))
    assert names({"propertyName": "amount", "operator": "GT", "value": "9"}) == ["b", "c"]
    assert names({"propertyName": "amount", "operator": "LT", "value": "10"}) == ["a"]
    assert names({"propertyName": "amount", "operator": "GTE", "value": "10"}) == ["b", "c"]
    assert names({"propertyName": "amount", "operator": "LTE", "value": "10"}) == ["a", "b"]
    assert names({"propertyName": "amount", "operator": "EQ", "value": "10.0"}) == ["b"]
    assert names({"propertyName": "dealname", "operator": "NEQ", "value": "A"}) == ["b", "c", "d"]
    assert names({"propertyName": "dealname", "operator": "IN", "values": ["a", "c"]}) == ["a", "c"]
    assert names({"propertyName": "dealname", "operator": "NOT_IN", "values": ["a", "c"]}) == [
        "b",
        "d",
    ]
    assert names(
        {"propertyName": "amount", "operator": "BETWEEN", "value": "9", "highValue": "10"}
    ) == ["a", "b"]
    assert names({"propertyName": "amount", "operator": "HAS_PROPERTY"}) == ["a", "b", "c"]
    assert names({"propertyName": "amount", "operator": "NOT_HAS_PROPERTY"}) == ["d"]
    assert names({"propertyName": "closedate", "operator": "EQ", "value": jan}) == ["a"]
    assert names(
        {"propertyName": "closedate", "operator": "GT", "value": "2026-01-15T00:00:00.000Z"}
    ) == ["b"]


def test_search_or_of_and_groups_and_sorts(hs: Sandbox) -> None:
    """Filter groups are ORed, filters in a group ANDed; sorts order numerically and descending."""
    for name, amount in (("a", "5"), ("b", "50"), ("c", "500")):
        hs.add_object("deals", {"dealname": name, "amount": amount})
    body = search_body(
        filterGroups=[
            {"filters": [{"propertyName": "dealname", "operator": "EQ", "value": "a"}]},
            {
                "filters": [
                    {"propertyName": "amount", "operator": "GT", "value": "10"},
                    {"propertyName": "amount", "operator": "LT", "value": "100"},
                ]
            },
        ],
        sorts=[{"propertyName": "amount", "direction": "DESCENDING"}],
        properties=["dealname"],
    )
    answer = raw(hs, "POST", "/crm/v3/objects/deals/search", json=body).json()
    assert [r["properties"]["dealname"] for r in answer["results"]] == ["b", "a"]
    assert answer["total"] == 2
    assert set(answer["results"][0]["properties"]) == {
        "dealname",
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
    }


def test_search_order_follows_every_change_between_queries(hs: Sandbox) -> None:
    """The sandbox keeps each sort's order between queries: a change, a new record or an
    archived one shows in the next query's order, and equal values keep creation order."""
    ids = {name: hs.add_object("deals", {"dealname": name, "amount": amount})
           for name, amount in (("a", "5"), ("b", "50"), ("c", "500"), ("d", "50"))}
    names = {v: k for k, v in ids.items()}

    def amounts_over(value: str) -> list[str]:
        body = search_body(
            filterGroups=[{"filters": [{"propertyName": "amount", "operator": "GT", "value": value}]}],
            sorts=[{"propertyName": "amount", "direction": "ASCENDING"}],
        )
        answer = raw(hs, "POST", "/crm/v3/objects/deals/search", json=body).json()
        return [names[r["id"]] for r in answer["results"]]

    assert amounts_over("0") == ["a", "b", "d", "c"]
    assert raw(hs, "PATCH", f"/crm/v3/objects/deals/{ids['a']}",
               json={"properties": {"amount": "1000"}}).status_code == 200
    assert amounts_over("1") == ["b", "d", "c", "a"]
    assert raw(hs, "DELETE", f"/crm/v3/objects/deals/{ids['b']}").status_code == 204
    assert amounts_over("2") == ["d", "c", "a"]
    ids["e"] = hs.add_object("deals", {"dealname": "e", "amount": "7"})
    names[ids["e"]] = "e"
    assert amounts_over("3") == ["e", "d", "c", "a"]


@pytest.mark.parametrize("operator", ["GT", "GTE"])
def test_a_search_anchored_on_its_first_sort_answers_as_a_full_scan(hs: Sandbox, operator: str) -> None:
    """A GT/GTE on the first ascending sort property (keyset paging's anchor) skips what is
    before it by bisection; the answer is what testing every record gives: values equal to the
    anchor, missing values (sorted last, never matching), archived records, other filters."""
    amounts = ["5", "50", "50", "", "7", "500", "50", "1000"]
    ids = [hs.add_object("deals", {"dealname": f"d{i}", "amount": amount}) for i, amount in enumerate(amounts)]
    assert raw(hs, "DELETE", f"/crm/v3/objects/deals/{ids[6]}").status_code == 204

    def search(*filters: dict) -> list[str]:
        body = search_body(filterGroups=[{"filters": list(filters)}],
                           sorts=[{"propertyName": "amount", "direction": "ASCENDING"}, "hs_object_id"])
        return [r["id"] for r in raw(hs, "POST", "/crm/v3/objects/deals/search", json=body).json()["results"]]

    for anchor in ("0", "5", "6", "50", "999", "1000", "5000"):
        expected = [ids[i] for i in sorted(
            (i for i, amount in enumerate(amounts) if amount and i != 6
             and (float(amount) > float(anchor) if operator == "GT" else float(amount) >= float(anchor))),
            key=lambda i: (float(amounts[i]), int(ids[i])))]
        assert search({"propertyName": "amount", "operator": operator, "value": anchor}) == expected, anchor
    assert search({"propertyName": "amount", "operator": operator, "value": "50"},
                  {"propertyName": "dealname", "operator": "EQ", "value": "d2"}) == (
        [ids[2]] if operator == "GTE" else [])


def test_search_paging_total_and_limits(hs: Sandbox, client: HubSpot) -> None:
    """Search pages with ``after`` offsets, reports ``total``, and refuses limit > 200 with 400."""
    hs.seed(companies=2, contacts=2, deals=450, seed=2)
    seen, after = [], None
    while True:
        page = client.crm.deals.search_api.do_search(
            PublicObjectSearchRequest(
                filter_groups=[], sorts=["hs_lastmodifieddate"], limit=200, after=after
            )
        )
        assert page.total == 450
        seen += [r.id for r in page.results]
        if page.paging is None:
            break
        after = page.paging.next.after
    assert len(set(seen)) == 450
    assert (
        raw(hs, "POST", "/crm/v3/objects/deals/search", json=search_body(limit=201)).status_code
        == 400
    )


def test_search_cannot_page_past_10000(hs: Sandbox) -> None:
    """Asking for results beyond the first 10,000 is a 400, as in HubSpot."""
    hs.seed(companies=1, contacts=1, deals=10_050, seed=4)
    ok = raw(hs, "POST", "/crm/v3/objects/deals/search", json=search_body(limit=200, after="9800"))
    assert ok.status_code == 200
    assert ok.json()["total"] == 10_050
    assert "paging" in ok.json()
    beyond = raw(
        hs, "POST", "/crm/v3/objects/deals/search", json=search_body(limit=200, after="9900")
    )
    assert beyond.status_code == 400
    assert beyond.json()["category"] == "VALIDATION_ERROR"


def test_search_index_lag_hides_fresh_and_shows_stale(clock: FakeClock) -> None:
    """With index lag, new records are invisible and updated ones match on old values until the lag
    passes.
    """
    with Sandbox(rate_limits=RateLimits.unlimited(), clock=clock, index_lag_seconds=5) as hs:
        deal_id = hs.add_object("deals", {"dealname": "old"})
        body = search_body(
            filterGroups=[{"filters": [{"propertyName": "dealname", "operator": "HAS_PROPERTY"}]}],
            properties=["dealname"],
        )
        assert raw(hs, "POST", "/crm/v3/objects/deals/search", json=body).json()["total"] == 0
        clock.advance(5)
        assert raw(hs, "POST", "/crm/v3/objects/deals/search", json=body).json()["total"] == 1
        hs.update_object("deals", deal_id, {"dealname": "new"})
        stale = raw(hs, "POST", "/crm/v3/objects/deals/search", json=body).json()
        assert stale["results"][0]["properties"]["dealname"] == "old"
        clock.advance(5)
        fresh = raw(hs, "POST", "/crm/v3/objects/deals/search", json=body).json()
        assert fresh["results"][0]["properties"]["dealname"] == "new"


def test_search_rejects_unknown_properties_and_too_many_groups(hs: Sandbox) -> None:
    """Unknown filter properties and more than 5 filter groups are 400s."""
    unknown = search_body(
        filterGroups=[{"filters": [{"propertyName": "nope", "operator": "EQ", "value": "1"}]}]
    )
    assert raw(hs, "POST", "/crm/v3/objects/deals/search", json=unknown).status_code == 400
    group = {"filters": [{"propertyName": "dealname", "operator": "HAS_PROPERTY"}]}
    too_many = search_body(filterGroups=[group] * 6)
    assert raw(hs, "POST", "/crm/v3/objects/deals/search", json=too_many).status_code == 400


# ------------------------------------------------------------------- associations
def test_associations_v4_batch_read_lists_every_type(hs: Sandbox, client: HubSpot) -> None:
    """A primary company link shows types 341 and 5; both directions agree; unknown ids give 207."""
    company = hs.add_object("companies", {"name": "Acme"})
    other = hs.add_object("companies", {"name": "Other"})
    contact = hs.add_object("contacts", {"email": "c@acme.com"})
    deal = hs.add_object(
        "deals",
        {"dealname": "D"},
        associations={"companies": [company, other], "contacts": [contact]},
    )
    answer = client.crm.associations.v4.batch_api.get_page(
        "deals", "companies", BatchInputPublicFetchAssociationsBatchRequest(inputs=[{"id": deal}])
    )
    types = {
        str(t.to_object_id): sorted(a.type_id for a in t.association_types)
        for t in answer.results[0].to
    }
    assert types == {company: [5, 341], other: [341]}
    back = raw(
        hs,
        "POST",
        "/crm/v4/associations/companies/deals/batch/read",
        json={"inputs": [{"id": company}]},
    ).json()
    assert sorted(t["typeId"] for t in back["results"][0]["to"][0]["associationTypes"]) == [6, 342]
    contacts = raw(
        hs,
        "POST",
        "/crm/v4/associations/0-3/0-1/batch/read",
        json={"inputs": [{"id": deal}, {"id": "404"}]},
    )
    assert contacts.status_code == 207
    assert contacts.json()["results"][0]["to"][0]["associationTypes"][0]["typeId"] == 3
    too_many = raw(
        hs,
        "POST",
        "/crm/v4/associations/deals/companies/batch/read",
        json={"inputs": [{"id": str(i)} for i in range(1001)]},
    )
    assert too_many.status_code == 400


def test_v4_association_reads_page_at_500_and_continue_per_object(hs: Sandbox) -> None:
    """A v4 batch read gives 500 links of a crowded deal and a cursor; the per-object GET
    continues from that cursor, so every link is read exactly once."""
    deal = hs.add_object("deals", {"dealname": "Crowded"})
    contacts = [hs.add_object("contacts", {"email": f"c{n}@example.com"}) for n in range(1203)]
    for contact in contacts:
        hs.associate("deals", deal, "contacts", contact, 3)
    small = hs.add_object("deals", {"dealname": "Small"}, associations={"contacts": contacts[:2]})
    batch = raw(
        hs,
        "POST",
        "/crm/v4/associations/deals/contacts/batch/read",
        json={"inputs": [{"id": deal}, {"id": small}]},
    )
    assert batch.status_code == 200
    by_deal = {r["from"]["id"]: r for r in batch.json()["results"]}
    assert len(by_deal[deal]["to"]) == 500 and "paging" not in by_deal[small]
    seen = [link["toObjectId"] for link in by_deal[deal]["to"]]
    after = by_deal[deal]["paging"]["next"]["after"]
    pages = 0
    while after:
        page = raw(
            hs, "GET", f"/crm/v4/objects/deals/{deal}/associations/contacts?after={after}&limit=500"
        )
        assert page.status_code == 200
        body = page.json()
        assert len(body["results"]) <= 500
        seen += [link["toObjectId"] for link in body["results"]]
        after = body.get("paging", {}).get("next", {}).get("after")
        pages += 1
    assert pages == 2
    assert sorted(seen) == sorted(contacts)  # each once: none skipped, none repeated
    assert body["results"][-1]["associationTypes"] == [{"category": "HUBSPOT_DEFINED", "typeId": 3}]
    # the batch read continues from its own cursor too, and a GET with no cursor starts over
    resent = raw(
        hs,
        "POST",
        "/crm/v4/associations/deals/contacts/batch/read",
        json={"inputs": [{"id": deal, "after": by_deal[deal]["paging"]["next"]["after"]}]},
    ).json()["results"][0]
    assert resent["to"][0]["toObjectId"] == seen[500] and "paging" in resent
    first = raw(hs, "GET", f"/crm/v4/objects/0-3/{deal}/associations/0-1?limit=7").json()
    assert [link["toObjectId"] for link in first["results"]] == seen[:7]
    assert first["paging"]["next"]["after"]
    lonely = hs.add_object("deals", {"dealname": "Lonely"})
    assert raw(hs, "GET", f"/crm/v4/objects/deals/{lonely}/associations/contacts").json() == {
        "results": []
    }


@pytest.mark.parametrize("limit", ["0", "501", "x", "", "-1", "%C2%B2"])
def test_v4_per_object_association_get_refuses_a_limit_outside_1_to_500(
    hs: Sandbox, limit: str
) -> None:
    """``limit`` must be a whole number from 1 to 500: anything else is a 400."""
    deal = hs.add_object("deals", {"dealname": "D"})
    answer = raw(hs, "GET", f"/crm/v4/objects/deals/{deal}/associations/contacts?limit={limit}")
    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"


def test_v4_per_object_association_get_needs_a_known_record_and_a_token(hs: Sandbox) -> None:
    """An unknown record is a 404 error body, a bad cursor a 400, and no token a 401."""
    missing = raw(hs, "GET", "/crm/v4/objects/deals/404/associations/contacts")
    assert missing.status_code == 404
    assert missing.json()["category"] == "OBJECT_NOT_FOUND" and missing.json()["correlationId"]
    deal = hs.add_object("deals", {"dealname": "D"})
    path = f"/crm/v4/objects/deals/{deal}/associations/contacts"
    assert raw(hs, "GET", path + "?after=x").status_code == 400
    assert raw(hs, "GET", path + "?after=%C2%B2").status_code == 400  # a digit, but not 0-9
    assert requests.get(hs.base_url + path, timeout=5).status_code == 401
    assert raw(hs, "POST", path).status_code == 405


def test_only_one_primary_company(hs: Sandbox) -> None:
    """Making another company primary demotes the old one to unlabelled (341)."""
    first, second = (
        hs.add_object("companies", {"name": "1"}),
        hs.add_object("companies", {"name": "2"}),
    )
    deal = hs.add_object("deals", {"dealname": "D"}, associations={"companies": [first]})
    answer = raw(
        hs,
        "POST",
        "/crm/v4/associations/deals/companies/batch/create",
        json={
            "inputs": [
                {
                    "from": {"id": deal},
                    "to": {"id": second},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}],
                }
            ]
        },
    )
    assert answer.status_code == 201
    assert answer.json()["results"][0]["labels"] == ["Primary"]
    assert hs.associations("deals", deal, "companies") == {first: {341}, second: {5, 341}}


def test_default_association_put_and_create_with_associations(hs: Sandbox) -> None:
    """PUT .../associations/default creates the unlabelled type; POST create with associations links
    notes (214).
    """
    company = hs.add_object("companies", {"name": "Acme"})
    deal = hs.add_object("deals", {"dealname": "D"})
    put = raw(hs, "PUT", f"/crm/v4/objects/deals/{deal}/associations/default/companies/{company}")
    assert put.status_code == 200
    assert put.json()["results"][0]["associationSpec"]["associationTypeId"] == 341
    note = raw(
        hs,
        "POST",
        "/crm/v3/objects/notes",
        json={
            "properties": {
                "hs_timestamp": "2026-03-02T09:30:00Z",
                "hs_note_body": "Order SO-1 shipped",
            },
            "associations": [
                {
                    "to": {"id": deal},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}],
                }
            ],
        },
    )
    assert note.status_code == 201
    assert hs.associations("deals", deal, "notes") == {note.json()["id"]: {213}}
    wrong = raw(
        hs,
        "POST",
        "/crm/v3/objects/notes",
        json={
            "properties": {},
            "associations": [
                {
                    "to": {"id": deal},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}],
                }
            ],
        },
    )
    assert wrong.status_code == 400


# --------------------------------------------------------- pipelines and properties
def test_pipelines_default_and_custom(hs: Sandbox, client: HubSpot) -> None:
    """The default pipeline has HubSpot's stages with string metadata; custom ones get numeric stage
    ids.
    """
    custom = hs.add_pipeline(
        "Orders",
        [
            {"label": "Won", "probability": "1.0", "isClosed": True},
            {"label": "Lost", "probability": "0.0", "isClosed": True},
        ],
    )
    pipelines = {p.id: p for p in client.crm.pipelines.pipelines_api.get_all("deals").results}
    default = pipelines["default"]
    assert [s.id for s in default.stages] == [
        "appointmentscheduled",
        "qualifiedtobuy",
        "presentationscheduled",
        "decisionmakerboughtin",
        "contractsent",
        "closedwon",
        "closedlost",
    ]
    won = next(s for s in default.stages if s.id == "closedwon")
    assert won.metadata == {"isClosed": "true", "probability": "1.0"}
    assert all(s.id.isdigit() for s in pipelines[custom].stages)
    assert client.crm.pipelines.pipelines_api.get_by_id("deals", custom).label == "Orders"
    assert raw(hs, "GET", "/crm/v3/pipelines/deals/nope").status_code == 404
    deal = raw(
        hs,
        "POST",
        "/crm/v3/objects/deals",
        json={"properties": {"pipeline": custom, "dealstage": pipelines[custom].stages[0].id}},
    )
    assert deal.status_code == 201


def test_properties_and_groups(hs: Sandbox) -> None:
    """Groups and properties can be created once (409 the second time) and read back by name."""
    group = {"name": "ambac", "label": "Ambac Tracker"}
    assert raw(hs, "POST", "/crm/v3/properties/deals/groups", json=group).status_code == 201
    assert raw(hs, "POST", "/crm/v3/properties/deals/groups", json=group).status_code == 409
    assert (
        raw(hs, "GET", "/crm/v3/properties/deals/groups/ambac").json()["label"] == "Ambac Tracker"
    )
    prop = {
        "name": "ambac_status",
        "label": "Order status",
        "type": "enumeration",
        "fieldType": "select",
        "groupName": "ambac",
        "options": [{"label": "Open", "value": "open", "hidden": False}],
    }
    assert raw(hs, "POST", "/crm/v3/properties/deals", json=prop).status_code == 201
    again = raw(hs, "POST", "/crm/v3/properties/deals", json=prop)
    assert again.status_code == 409
    assert again.json()["category"] == "OBJECT_ALREADY_EXISTS"
    assert raw(hs, "GET", "/crm/v3/properties/deals/ambac_status").json()["groupName"] == "ambac"
    names = {p["name"] for p in raw(hs, "GET", "/crm/v3/properties/deals").json()["results"]}
    assert {"ambac_status", "dealname", "hs_lastmodifieddate"} <= names
    deal = raw(hs, "POST", "/crm/v3/objects/deals", json={"properties": {"ambac_status": "closed"}})
    assert deal.status_code == 400
    assert raw(hs, "GET", "/crm/v3/properties/deals/missing").status_code == 404


# ------------------------------------------------------------------ merge/restore
def test_merge_keeps_survivor_and_removes_merged(hs: Sandbox, client: HubSpot) -> None:
    """After a merge the survivor lists the merged id in hs_merged_object_ids, gains its links, and
    the merged one is 404.
    """
    company = hs.add_object("companies", {"name": "Acme"})
    primary = hs.add_object("deals", {"dealname": "P"})
    merged = hs.add_object(
        "deals", {"dealname": "M", "amount": "10"}, associations={"companies": [company]}
    )
    answer = raw(
        hs,
        "POST",
        "/crm/v3/objects/deals/merge",
        json={"primaryObjectId": primary, "objectIdToMerge": merged},
    )
    assert answer.status_code == 200
    assert answer.json()["id"] == primary
    survivor = hs.get_object("deals", primary)
    assert survivor["hs_merged_object_ids"] == merged
    assert survivor["amount"] == "10"
    assert survivor["dealname"] == "P"
    assert company in hs.associations("deals", primary, "companies")
    assert raw(hs, "GET", f"/crm/v3/objects/deals/{merged}").status_code == 404
    assert hs.get_object("deals", merged, archived=True) is None


def test_restore_brings_an_archived_record_back(hs: Sandbox) -> None:
    """``restore_object`` makes an archived record readable again with the same id."""
    deal = hs.add_object("deals", {"dealname": "R"})
    hs.archive_object("deals", deal)
    assert hs.get_object("deals", deal) is None
    hs.restore_object("deals", deal)
    assert raw(hs, "GET", f"/crm/v3/objects/deals/{deal}").status_code == 200


# ------------------------------------------------------------------------ seeding
def test_seed_is_deterministic_and_realistic() -> None:
    """The same seed gives the same portal; it has www/https domains, mixed-case emails, empty
    amounts and wins.
    """
    snapshots = []
    for _ in range(2):
        with Sandbox(clock=FakeClock()) as hs:
            ids = hs.seed(companies=40, contacts=80, deals=200, seed=7)
            snapshots.append([hs.get_object(t, i) for t in ids for i in ids[t]])
            deals = [hs.get_object("deals", i) for i in ids["deals"]]
            companies = [hs.get_object("companies", i) for i in ids["companies"]]
            contacts = [hs.get_object("contacts", i) for i in ids["contacts"]]
            assert any(c.get("domain", "").startswith(("www.", "https://")) for c in companies)
            assert len({c["name"] for c in companies}) < len(companies)
            assert any(c["email"] != c["email"].lower() for c in contacts)
            assert any(d.get("amount") == "" for d in deals)
            pipelines = {d["pipeline"] for d in deals}
            assert "default" in pipelines
            assert len(pipelines) == 2
            assert sum(d["dealstage"] == "closedwon" for d in deals) > 20
            links = [hs.associations("deals", i, "companies") for i in ids["deals"]]
            assert all(sum(5 in types for types in link.values()) == 1 for link in links)
            assert any(types == {341} for link in links for types in link.values())
    assert snapshots[0] == snapshots[1]


def test_seeding_fifty_thousand_deals_takes_seconds() -> None:
    """Seeding 50,000 deals stays fast enough for benchmarks (well under 30 s)."""
    with Sandbox() as hs:
        started = time.perf_counter()
        hs.seed(companies=2000, contacts=5000, deals=50_000, seed=1)
        assert time.perf_counter() - started < 30
        assert len(hs.portal.objects["deals"]) == 50_000


def test_index_lag_applies_to_seeded_records_changed_later(clock: FakeClock) -> None:
    """A seeded record archived or edited later shows its old self in search while lagging."""
    with Sandbox(rate_limits=RateLimits.unlimited(), clock=clock, index_lag_seconds=5) as hs:
        ids = hs.seed(companies=1, contacts=1, deals=2, seed=9)["deals"]
        hs.archive_object("deals", ids[0])
        hs.update_object("deals", ids[1], {"dealname": "renamed"})
        body = search_body(properties=["dealname"])
        answer = raw(hs, "POST", "/crm/v3/objects/deals/search", json=body).json()
        assert answer["total"] == 2
        assert "renamed" not in [r["properties"]["dealname"] for r in answer["results"]]
        clock.advance(5)
        answer = raw(hs, "POST", "/crm/v3/objects/deals/search", json=body).json()
        assert [r["properties"]["dealname"] for r in answer["results"]] == ["renamed"]
