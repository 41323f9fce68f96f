"""Answers HubSpot never sends, through the real SDK against the sandbox: each is a clear
:class:`HubSpotApiError` saying the answer is malformed (never a ``KeyError``, ``OSError`` or
``UnicodeDecodeError`` from deep inside), and paging that would never end stops."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ambac_hubspot_plugin.errors import HubSpotApiError, HubSpotUnavailableError

from . import test_client_sandbox as sandboxed
from .test_client_sandbox import FAST_RETRY, ClientFactory, _log

hs, make_client = sandboxed.hs, sandboxed.make_client  # the sandbox and client fixtures, shared

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
SEARCH = "/crm/objects/2026-09/deals/search"


def _malformed(info: pytest.ExceptionInfo[HubSpotApiError]) -> None:
    assert type(info.value) is HubSpotApiError
    assert "malformed" in str(info.value)


@pytest.mark.parametrize("paging", ["oops", {"next": "oops"}, ["next"]], ids=["text", "next-text", "list"])
def test_a_search_paging_that_is_not_an_object_is_malformed(
    hs: Any, make_client: ClientFactory, paging: Any
) -> None:
    hs.faults.fail_next(1, status=200, path_prefix=SEARCH, body={"results": [], "paging": paging})
    with pytest.raises(HubSpotApiError) as info:
        list(make_client().iter_modified_deals(EPOCH, ["dealname"]))
    _malformed(info)


@pytest.mark.parametrize("cursor", ["0", "200"], ids=["first-page-again", "no-records"])
def test_a_search_cursor_that_does_not_move_on_stops_at_once(
    hs: Any, make_client: ClientFactory, cursor: str
) -> None:
    """A page that pages back to itself (or on, with no records) would be asked for ever."""
    stuck = {"total": 5, "results": [], "paging": {"next": {"after": cursor}}}
    hs.faults.fail_next(50, status=200, path_prefix=SEARCH, body=stuck)
    with pytest.raises(HubSpotApiError) as info:
        list(make_client().iter_modified_deals(EPOCH, ["dealname"]))
    _malformed(info)
    assert sum(1 for r in _log(hs) if r.path == SEARCH) == 1


@pytest.mark.parametrize("ids", [("1", "1"), ("1", "2"), ("x", "x")], ids=["one", "two", "not-numeric"])
def test_a_search_answering_the_same_records_for_ever_stops(
        hs: Any, make_client: ClientFactory, ids: tuple[str, str]) -> None:
    """Pages are re-anchored on the last modification time and id read (keyset paging), not
    on HubSpot's cursor: an answer that never gets past what was read is malformed, after a
    few calls, not asked for ever."""
    deals = [{"id": i, "properties": {"hs_lastmodifieddate": "2025-01-01T00:00:00Z"},
              "updatedAt": "2025-01-01T00:00:00Z"} for i in dict.fromkeys(ids)]
    hs.faults.fail_next(50, status=200, path_prefix=SEARCH,
                        body={"results": deals, "paging": {"next": {"after": "100"}}})
    with pytest.raises(HubSpotApiError) as info:
        list(make_client().iter_modified_deals(EPOCH, ["dealname"]))
    _malformed(info)
    assert sum(1 for r in _log(hs) if r.path == SEARCH) <= 3


@pytest.mark.parametrize("stamp", ["99999999999999999999", 1e300, float("inf")], ids=["digits", "float", "inf"])
def test_a_timestamp_out_of_range_is_malformed(hs: Any, make_client: ClientFactory, stamp: Any) -> None:
    hs.faults.fail_next(1, status=200, path_prefix="/crm/objects/2026-09/deals/1",
                        body={"id": "1", "properties": {"hs_lastmodifieddate": stamp}})
    with pytest.raises(HubSpotApiError) as info:
        make_client().get_deal("1")
    _malformed(info)


def test_a_stage_order_that_is_not_a_number_is_malformed(hs: Any, make_client: ClientFactory) -> None:
    body = {"results": [{"id": "p", "stages": [{"id": "s", "displayOrder": "first"}]}]}
    hs.faults.fail_next(1, status=200, path_prefix="/crm/pipelines/2026-09", body=body)
    with pytest.raises(HubSpotApiError) as info:
        make_client().get_pipelines()
    _malformed(info)


@pytest.mark.parametrize("errors", [["boom"], [{"context": {"ids": 5}, "status": "error"}]],
                         ids=["text-error", "number-ids"])
def test_unreadable_errors_of_a_batch_write_are_malformed(
    hs: Any, make_client: ClientFactory, errors: Any
) -> None:
    body = {"status": "COMPLETE", "results": [], "errors": errors, "numErrors": 1}
    hs.faults.fail_next(1, status=200, path_prefix="/crm/objects/2026-09/deals/batch/update", body=body)
    with pytest.raises(HubSpotApiError) as info:
        make_client().update_objects("deals", {"1": {"dealname": "x"}})
    _malformed(info)


@pytest.mark.parametrize(("status", "error", "sent"),
                         [(502, HubSpotUnavailableError, FAST_RETRY.max_attempts), (400, HubSpotApiError, 1)])
def test_an_error_page_that_is_not_utf8_is_classified_like_any_other(
    hs: Any, make_client: ClientFactory, status: int, error: type[HubSpotApiError], sent: int
) -> None:
    """A proxy's Latin-1 page: the SDK fails decoding it, the client still reads the status
    (a 502 is retried), and the page it chains carries no token."""
    page = f"<html>Überlastung; Authorization: Bearer {hs.access_token}</html>".encode("latin-1")
    hs.faults.fail_next(10, status=status, path_prefix="/crm/pipelines/2026-09", body=page)
    with pytest.raises(HubSpotApiError) as info:
        make_client().get_pipelines()
    assert type(info.value) is error
    assert info.value.status == status
    assert sum(1 for r in _log(hs) if r.path.startswith("/crm/pipelines/2026-09")) == sent
    cause = info.value.__cause__
    assert cause is not None and not isinstance(cause, UnicodeDecodeError)
    assert hs.access_token not in repr(vars(cause)) and hs.access_token not in str(info.value)
