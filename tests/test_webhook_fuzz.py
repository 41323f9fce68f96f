"""Property-based fuzz of the webhook receiver: hostile bodies and headers only ever get 4xx."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ambac_hubspot_plugin._webhooks import (
    WebhookReceiver,
    WebhookTarget,
    check_batch,
    parse_batch,
)
from ambac_hubspot_plugin._webhooks import split_drafts as _split_drafts
from ambac_hubspot_plugin.errors import WebhookPayloadError
from ambac_hubspot_plugin.sandbox import sign_v1, sign_v3
from ambac_hubspot_plugin.settings import Secret
from ambac_hubspot_plugin.store import SqlStateStore, open_store
from tests._store_support import FakeClock

TENANT, PORTAL, SECRET = "3", "62515", "fuzz-secret"
URL = "https://tracker.example.com/hubspot/webhooks/3"
PER_MINUTE = 5
VALID = {"eventId": 1, "subscriptionId": 2, "portalId": 62515, "appId": 4,
         "occurredAt": 1_714_564_800_000, "subscriptionType": "deal.propertyChange",
         "attemptNumber": 0, "objectId": 77, "propertyName": "dealstage",
         "propertyValue": "closedwon", "changeSource": "CRM_UI"}
REQUIRED = ("portalId", "objectId", "occurredAt", "subscriptionType")


class Rig:
    """One store and receiver shared by every example of a test (hypothesis runs many)."""

    def __init__(self, directory: Path) -> None:
        self.clock = FakeClock()
        self.store: SqlStateStore = open_store(f"sqlite:///{directory / 'fuzz.sqlite3'}",
                                               clock=self.clock)
        target = WebhookTarget(TENANT, PORTAL, Secret(SECRET), self.store)
        self.receiver = WebhookReceiver(lambda key: target if key == str(TENANT) else None,
                                        clock=self.clock, max_body_bytes=64 * 1024,
                                        refusal_log_per_minute=PER_MINUTE)

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        status, answer_headers, answer = self.receiver.handle("POST", URL, headers, body,
                                                              tenant_key=str(TENANT))
        assert answer_headers["Content-Type"] == "application/json"
        assert b"Traceback" not in answer
        return status, json.loads(answer)

    def v3(self, body: bytes) -> dict[str, str]:
        stamp = str(int(self.clock().timestamp() * 1000))
        return {"X-HubSpot-Request-Timestamp": stamp,
                "X-HubSpot-Signature-v3": sign_v3(SECRET, "POST", URL, body, stamp)}

    def count(self, table: str) -> int:
        with self.store.engine.connect() as conn:
            # ``table`` is one of three fixed names, never input.
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    """A store and receiver that live across all examples; checked empty at the end."""
    with tempfile.TemporaryDirectory() as directory:
        made = Rig(Path(directory))
        yield made
        # Refused requests must leave the inbox and the queue untouched...
        assert (made.count("hubspot_webhook_batches"), made.count("hubspot_webhook_events"),
                made.count("hubspot_jobs")) == (0, 0, 0)
        # ...and, the clock standing still, write at most PER_MINUTE log lines per reason.
        with made.store.engine.connect() as conn:
            per_reason = conn.execute(sa.text(
                "SELECT record, count(*) FROM hubspot_integration_log GROUP BY record")).all()
        assert per_reason
        assert all(count <= PER_MINUTE for _record, count in per_reason), per_reason
        made.store.close()


def _refused(status: int) -> None:
    assert 400 <= status < 500, status


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=5),
    max_leaves=20)

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(body=st.binary(max_size=2048), signed=st.booleans())
def test_random_bytes_are_refused(rig: Rig, body: bytes, signed: bool) -> None:
    """Arbitrary bytes, signed with the right secret or not, get a 4xx."""
    headers = rig.v3(body) if signed else {}
    try:
        parse_batch(body)
    except WebhookPayloadError:
        pass
    else:
        assume(False)  # bytes that happen to be a valid batch are not this test's subject
    _refused(rig.post(body, headers)[0])


@FUZZ
@given(value=json_values)
def test_signed_random_json_is_refused_with_400(rig: Rig, value: Any) -> None:
    """Any JSON that is not a batch of valid events gets 400 even with a valid signature."""
    body = json.dumps(value).encode()
    try:
        parse_batch(body)
    except WebhookPayloadError:
        pass
    else:
        assume(False)
    status, answer = rig.post(body, rig.v3(body))
    assert status == 400
    assert answer["error"] == "malformed"


@FUZZ
@given(data=st.data(), position=st.integers(0, 3))
def test_signed_batches_with_one_broken_event_are_refused_whole(rig: Rig, data: st.DataObject,
                                                                position: int) -> None:
    """A signed batch of valid events with one broken event is refused entirely (400/404)."""
    broken = dict(VALID)
    field = data.draw(st.sampled_from([*REQUIRED, "propertyName", "eventId", "mergedObjectIds"]))
    if data.draw(st.booleans(), label="drop") and field in (*REQUIRED, "propertyName"):
        del broken[field]
    else:
        broken[field] = data.draw(
            st.one_of(st.text(max_size=5).filter(lambda s: not s.isdigit()), st.booleans(),
                      st.floats(), st.lists(st.integers(), max_size=2),
                      st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                      st.integers(max_value=0)),
            label="bad value")
    events = [dict(VALID, objectId=100 + n) for n in range(3)]
    events.insert(position, broken)
    body = json.dumps(events).encode()
    try:
        parse_batch(body)
    except WebhookPayloadError:
        pass
    else:
        assume(False)  # e.g. a negative eventId is out of range, but a text one may be valid
    _refused(rig.post(body, rig.v3(body))[0])


@FUZZ
@given(headers=st.dictionaries(
    st.sampled_from(["X-HubSpot-Signature", "x-hubspot-signature-version",
                     "X-HubSpot-Signature-v3", "X-HUBSPOT-REQUEST-TIMESTAMP", "Content-Length",
                     "Content-Type"]) | st.text(max_size=20),
    st.text(max_size=80) | st.sampled_from(["v1", "v2", "v3", "0", "-1", "99999999999999999"]),
    max_size=6))
def test_valid_batch_with_fuzzed_headers_is_refused(rig: Rig, headers: dict[str, str]) -> None:
    """A valid batch with made-up signature headers never gets in: 4xx every time."""
    body = json.dumps([VALID]).encode()
    _refused(rig.post(body, headers)[0])


@FUZZ
@given(body=st.binary(max_size=512), v1=st.booleans())
def test_signatures_over_another_body_are_refused(rig: Rig, body: bytes, v1: bool) -> None:
    """A valid batch carrying a correct signature of some other body gets 401."""
    real = json.dumps([VALID]).encode()
    assume(body != real)
    headers = ({"X-HubSpot-Signature": sign_v1(SECRET, body), "X-HubSpot-Signature-Version": "v1"}
               if v1 else rig.v3(body))
    assert rig.post(real, headers)[0] == 401


@FUZZ
@given(data=st.data(), extra=json_values, key=st.text(max_size=8))
def test_what_the_receiver_accepts_the_split_can_read(data: st.DataObject, extra: Any,
                                                      key: str) -> None:
    """Any body the receiver's check accepts (a valid batch with extra keys, then a few bytes
    changed) is read by the split into event drafts: a 200 is never an unreadable delivery."""
    body = bytearray(json.dumps([dict(VALID, **{f"x{key}": extra}), VALID]).encode())
    for _ in range(data.draw(st.integers(0, 3), label="edits")):
        at = data.draw(st.integers(0, len(body) - 1), label="at")
        body[at] = data.draw(st.integers(0, 255), label="byte")
    try:
        events = check_batch(bytes(body))
    except WebhookPayloadError:
        assume(False)
    drafts = _split_drafts(bytes(body))
    assert len(drafts) == len(events) == 2
