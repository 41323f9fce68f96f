"""The requests the adapter really sends, through the real SDK, match HubSpot's request schemas."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from ambac_hubspot_plugin._ratelimit import RateBudget, RateLimiter
from ambac_hubspot_plugin._retry import RetryPolicy
from ambac_hubspot_plugin.client import ClientSettings, HubSpotClient, StaticToken, build_client

from ._openapi_support import require_specs, validate_sent_request
from ._recording_proxy import Recorded, recording_proxy

sandbox_pkg = pytest.importorskip(
    "ambac_hubspot_plugin.sandbox", reason="the sandbox emulator package is missing"
)

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
#: The legacy spec of each object type's v3 path (deals as the numeric ``0-3`` path it documents).
V3_SPECS = {"deals": "deals.json", "companies": "companies.json", "contacts": "contacts.json"}
_OBJECT_CALL = re.compile(r"^/crm/(?:v3/objects|objects/2026-09)/(\w+)/(search|batch/read)(\?.*)?$")


@pytest.fixture
def recorded() -> Iterator[tuple[Any, HubSpotClient, list[Recorded]]]:
    """A seeded sandbox, a client that reaches it through a recording proxy, and the record."""
    require_specs()
    with (
        sandbox_pkg.Sandbox(rate_limits=sandbox_pkg.RateLimits.unlimited()) as hs,
        recording_proxy(hs.base_url) as (url, record),
    ):
        settings = ClientSettings(
            auth=StaticToken(hs.access_token),
            base_url=url,
            portal_id=str(hs.portal_id),
            retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.1, max_elapsed=10),
            connect_timeout=2,
            read_timeout=10,
        )
        client = build_client(
            settings, limiter=RateLimiter(RateBudget(burst=100_000)), rng=random.Random(0)
        )
        try:
            yield hs, client, record
        finally:
            client.close()


def _validate_against_both_families(call: Recorded) -> None:
    """Validate one recorded search or batch read against the v3 spec and the 2026-09 spec."""
    match = _OBJECT_CALL.match(call.path)
    assert match, f"not a search or batch read: {call.method} {call.path}"
    object_type, operation, query = match.group(1), match.group(2), match.group(3) or ""
    v3_type = "0-3" if object_type == "deals" else object_type
    validate_sent_request(
        V3_SPECS[object_type],
        call.method,
        f"/crm/v3/objects/{v3_type}/{operation}{query}",
        call.body,
        call.headers,
    )
    validate_sent_request(
        f"dbv-2026-09/{object_type}.json",
        call.method,
        f"/crm/objects/2026-09/{object_type}/{operation}{query}",
        call.body,
        call.headers,
    )


def test_search_pages_and_batch_reads_send_what_the_specs_require(recorded: Any) -> None:
    """Every search page (the first included) and batch read validates against both specs' schemas."""
    hs, client, record = recorded
    ids = hs.seed(companies=120, contacts=110, deals=450, seed=9)
    deals = list(client.iter_modified_deals(EPOCH, ["dealname", "amount"]))
    stage_deals = list(client.iter_deals_in_stages(["closedwon", "appointmentscheduled"], ["dealname"]))
    companies = list(client.read_companies(ids["companies"], ["name"]))
    contacts = list(client.read_contacts(ids["contacts"], ["email"]))
    assert len(deals) == 450 and len(companies) == 120 and len(contacts) == 110
    assert stage_deals
    calls = [c for c in record if _OBJECT_CALL.match(c.path)]
    searches = [json.loads(c.body) for c in calls if c.path.endswith("/search")]
    reads = [json.loads(c.body) for c in calls if "/batch/read" in c.path]
    assert len(searches) >= 4 and len(reads) >= 4  # several pages of each, not one sample
    assert searches[0]["after"] == "0"  # the first page names its cursor too
    assert all(isinstance(s, str) for body in searches for s in body["sorts"])
    assert all(body["propertiesWithHistory"] == [] for body in reads)
    for call in calls:
        _validate_against_both_families(call)


def test_string_sorts_keep_the_ascending_modification_order(recorded: Any) -> None:
    """Searching with the specs' string sorts still reads deals oldest-modified first."""
    hs, client, _record = recorded
    hs.seed(companies=1, contacts=1, deals=450, seed=11)
    times = [d.updated_at for d in client.iter_modified_deals(EPOCH, ["dealname"])]
    assert len(times) == 450 and times == sorted(times)
