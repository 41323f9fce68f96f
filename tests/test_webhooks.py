"""The webhook receiver over real loopback HTTP, the inbox, and ordered, once-only processing."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import msgspec
import pytest
import sqlalchemy as sa

from ambac_hubspot_plugin._webhooks import (
    INBOX_JOB_KIND,
    JOB_KIND,
    EventApplier,
    WebhookEvent,
    WebhookInboxSplitter,
    WebhookProcessor,
    WebhookReceiver,
    WebhookTarget,
    check_batch,
    order_events,
    parse_batch,
)
from ambac_hubspot_plugin._webhooks import event_drafts as _drafts
from ambac_hubspot_plugin._webhooks._wire import MAX_DEPTH, RULES, WireEvent
from ambac_hubspot_plugin._wsgi_server import make_wsgi_server
from ambac_hubspot_plugin.errors import WebhookPayloadError
from ambac_hubspot_plugin.host import HttpRequest
from ambac_hubspot_plugin.sandbox import Sandbox, sign_v1, sign_v3
from ambac_hubspot_plugin.settings import Secret
from ambac_hubspot_plugin.store import (
    Backoff,
    InboxEventDraft,
    JobState,
    QueueRunner,
    SqlStateStore,
    open_store,
)
from tests._store_support import (  # noqa: F401  # store_url is a fixture used by name
    FakeClock,
    FixedRandom,
    store_url,
)

TENANT = "7"
PORTAL = "62515"
SECRET = "s3cret-client-secret-value"
T0 = 1_714_564_800_000  # 2024-05-01T12:00:00Z in ms


class RecordingApplier:
    """A real :class:`EventApplier`: records what it was given, fails while told to."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str, str, tuple[WebhookEvent, ...]]] = []
        self.failures_left = 0

    def apply(self, tenant_id: int, object_type: str, object_id: str,
              events: Sequence[WebhookEvent]) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("HubSpot read failed")
        self.calls.append((tenant_id, object_type, object_id, tuple(events)))

    def applied(self) -> list[tuple[str, str, str | None, str | None]]:
        return [(e.object_id, e.change, e.property_name, e.property_value)
                for *_, events in self.calls for e in events]


def event(object_id: int, change: str = "propertyChange", at: int = T0, *,
          name: str | None = "dealstage", value: str | None = "closedwon",
          portal: int = int(PORTAL), **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"eventId": 1, "subscriptionId": 1, "portalId": portal, "appId": 9,
                            "occurredAt": at, "subscriptionType": f"deal.{change}",
                            "attemptNumber": 0, "objectId": object_id, "changeSource": "CRM_UI"}
    if change == "propertyChange":
        item.update(propertyName=name, propertyValue=value)
    return {**item, **extra}


def body_of(*events: dict[str, Any]) -> bytes:
    return json.dumps(list(events), separators=(",", ":")).encode()


def v3_headers(url: str, body: bytes, *, secret: str = SECRET, at: datetime | None = None,
               method: str = "POST") -> dict[str, str]:
    stamp = str(int((at or datetime.now(UTC)).timestamp() * 1000))
    return {"Content-Type": "application/json", "X-HubSpot-Request-Timestamp": stamp,
            "X-HubSpot-Signature-v3": sign_v3(secret, method, url, body, stamp)}


class Harness:
    """A tenant's store, a receiver for it, and a processor with a recording applier."""

    def __init__(self, store: SqlStateStore, public_base_url: str | None = None,
                 **receiver_options: Any) -> None:
        self.store = store
        self.public_base_url = public_base_url
        self.applier = RecordingApplier()
        self.echo_values: set[str] = set()
        self.receiver = WebhookReceiver(self.resolve, **receiver_options)
        self.processor = WebhookProcessor(lambda _tenant: store, self.applier,
                                          is_echo=self.is_echo)
        self.splitter = WebhookInboxSplitter(lambda _tenant: store)

    def resolve(self, key: str) -> WebhookTarget | None:
        if key != str(TENANT):
            return None
        return WebhookTarget(TENANT, PORTAL, Secret(SECRET), self.store, self.public_base_url)

    def is_echo(self, _tenant_id: int, item: WebhookEvent) -> bool:
        return item.property_value in self.echo_values

    def split(self) -> int:
        """Run the due ``webhook.inbox`` jobs: stored deliveries become events; jobs run."""
        runner = QueueRunner(self.store, {INBOX_JOB_KIND: self.splitter.handle_job},
                             kinds=[INBOX_JOB_KIND], clock=self.store._clock)
        return runner.drain().claimed

    def drain(self) -> int:
        """Split stored deliveries, then run the due object jobs; how many of those ran."""
        self.split()
        runner = QueueRunner(self.store, {JOB_KIND: self.processor.handle_job},
                             kinds=[JOB_KIND], clock=self.store._clock)
        return runner.drain().claimed

    def batches(self) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM hubspot_webhook_batches"))
                       .scalar_one())

    def applied(self) -> list[tuple[str, str, str | None, str | None]]:
        return self.applier.applied()

    def rows(self) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM hubspot_webhook_events"))
                       .scalar_one())

    def jobs(self) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM hubspot_jobs")).scalar_one())


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStateStore]:  # noqa: F811  # the fixture
    """A migrated store on the real clock: a SQLite file, or a PostgreSQL schema of its own."""
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def harness(store: SqlStateStore) -> Harness:
    """Receiver and processor for tenant 7 / portal 62515 on the real clock."""
    return Harness(store)


class Served:
    """A receiver's WSGI app on a threaded loopback HTTP server."""

    def __init__(self, receiver: WebhookReceiver) -> None:
        self.server = make_wsgi_server(receiver.wsgi_app())
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hubspot/webhooks/{TENANT}"

    def post(self, body: bytes, headers: dict[str, str], path: str | None = None,
             method: str = "POST") -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path or f"/hubspot/webhooks/{TENANT}", body=body,
                         headers=headers)
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            conn.close()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def served(harness: Harness) -> Iterator[Served]:
    """The harness's receiver served over loopback HTTP."""
    running = Served(harness.receiver)
    yield running
    running.close()


# -- the sandbox as HubSpot -------------------------------------------------------------------


def _sandbox_tenant(hs: Sandbox, served: Served, harness: Harness) -> None:
    harness.resolve = lambda key: (  # type: ignore[method-assign]  # swap in the sandbox's app
        WebhookTarget(TENANT, str(hs.portal_id), Secret(hs.client_secret), harness.store, None)
        if key == str(TENANT) else None)
    harness.receiver._resolve = harness.resolve
    hs.webhooks.set_target(served.url)
    hs.webhooks.subscribe("deal.creation")
    hs.webhooks.subscribe("deal.propertyChange", "dealstage")
    hs.webhooks.subscribe("deal.deletion")


def test_sandbox_v3_deliveries_are_stored_and_applied_in_order(harness: Harness,
                                                               served: Served) -> None:
    """Deliveries signed by the sandbox's sender over loopback are acknowledged with 200,
    stored, and applied once per object with the creation first."""
    with Sandbox() as hs:
        _sandbox_tenant(hs, served, harness)
        deal = hs.add_object("deals", {"dealname": "Gear", "dealstage": "appointmentscheduled"})
        hs.update_object("deals", deal, {"dealstage": "closedwon"})
        assert hs.webhooks.flush(10)
        assert [d.status for d in hs.webhooks.deliveries] == [200] * len(hs.webhooks.deliveries)
        sent = len(hs.webhooks.events)
    assert harness.rows() == 0 and harness.batches() == len(hs.webhooks.deliveries)
    assert harness.split() == 1
    # HubSpot (and the sandbox) also report the initial dealstage of a new deal.
    assert (harness.rows(), harness.batches()) == (sent, 0) == (3, 0)
    harness.drain()
    assert harness.applied() == [(deal, "creation", None, None),
                                 (deal, "propertyChange", "dealstage", "appointmentscheduled"),
                                 (deal, "propertyChange", "dealstage", "closedwon")]
    assert harness.store.pending_webhook_events(TENANT, "deal", deal) == []


def test_sandbox_duplicated_and_shuffled_batches_apply_each_event_once(
        harness: Harness, served: Served) -> None:
    """With every batch sent twice and events shuffled, each event is stored and applied
    exactly once, creations before changes, in occurredAt order per object."""
    with Sandbox() as hs:
        _sandbox_tenant(hs, served, harness)
        hs.webhooks.configure(duplicate=True, shuffle=True, batch_window=0.1)
        deals = [hs.add_object("deals", {"dealname": f"D{n}", "dealstage": "qualifiedtobuy"})
                 for n in range(5)]
        for stage in ("presentationscheduled", "closedwon"):
            for deal in deals:
                hs.update_object("deals", deal, {"dealstage": stage})
        assert hs.webhooks.flush(10)
        assert any(d.duplicate for d in hs.webhooks.deliveries)
        sent = {(str(e["objectId"]), e["eventId"]) for e in hs.webhooks.events}
    harness.split()
    assert harness.rows() == len(sent) == 20
    harness.drain()
    applied = [e for *_x, events in harness.applier.calls for e in events]
    assert sorted((e.object_id, e.event_id) for e in applied) == sorted(sent)
    for deal in deals:
        mine = [e for e in applied if e.object_id == deal]
        assert mine[0].change == "creation"
        assert [e.property_value for e in mine[1:]] == [
            "qualifiedtobuy", "presentationscheduled", "closedwon"]
    [stats] = harness.store.webhook_portal_stats(TENANT)
    assert (stats.accepted, stats.duplicates) == (20, 20)
    assert stats.last_received_at is not None


# -- delivery semantics over HTTP -------------------------------------------------------------


def test_same_batch_twice_and_duplicates_across_batches_are_stored_once(
        harness: Harness, served: Served) -> None:
    """A redelivered batch (new attemptNumber, same content) and an event repeated in a later
    batch are acknowledged but stored and applied once."""
    first = body_of(event(1, at=T0), event(2, at=T0))
    assert served.post(first, v3_headers(served.url, first)) == (200, {"received": 2})
    assert harness.split() == 1
    again = body_of(event(1, at=T0, attemptNumber=1), event(2, at=T0, attemptNumber=1))
    assert served.post(again, v3_headers(served.url, again)) == (200, {"received": 2})
    mixed = body_of(event(2, at=T0, eventId=99), event(3, at=T0))
    assert served.post(mixed, v3_headers(served.url, mixed)) == (200, {"received": 2})
    assert harness.split() == 1
    [stats] = harness.store.webhook_portal_stats(TENANT)
    assert (stats.accepted, stats.duplicates) == (3, 3)
    assert harness.rows() == 3
    assert harness.drain() == 3
    assert sorted(harness.applied()) == [("1", "propertyChange", "dealstage", "closedwon"),
                                         ("2", "propertyChange", "dealstage", "closedwon"),
                                         ("3", "propertyChange", "dealstage", "closedwon")]
    # Delivered again after processing: still not applied twice.
    assert served.post(first, v3_headers(served.url, first))[0] == 200
    assert harness.drain() == 0
    assert harness.batches() == 0


def test_property_change_arriving_before_creation_is_applied_after_it(
        harness: Harness, served: Served) -> None:
    """A propertyChange delivered before its object's creation is applied after it, in one
    job for the object."""
    change = body_of(event(5, at=T0 + 10, value="closedwon"), event(5, at=T0 + 5, value="won2"))
    create = body_of(event(5, "creation", at=T0 + 20))
    assert served.post(change, v3_headers(served.url, change))[0] == 200
    assert served.post(create, v3_headers(served.url, create))[0] == 200
    assert harness.jobs() == 1  # one webhook.inbox job for both deliveries
    harness.split()
    assert harness.jobs() == 1  # one webhook.object job for the object's three events
    harness.drain()
    assert [(c, v) for _o, c, _n, v in harness.applied()] == [
        ("creation", None), ("propertyChange", "won2"), ("propertyChange", "closedwon")]


def test_v1_signed_delivery_is_accepted(harness: Harness, served: Served) -> None:
    """A delivery carrying only a v1 signature (CRM-object subscriptions) is accepted."""
    body = body_of(event(8))
    headers = {"X-HubSpot-Signature": sign_v1(SECRET, body), "X-HubSpot-Signature-Version": "v1"}
    assert served.post(body, headers)[0] == 200
    harness.split()
    assert harness.rows() == 1


def test_public_base_url_is_what_v3_is_checked_against(store: SqlStateStore) -> None:
    """Behind a proxy, v3 is verified against the configured public URL plus the called path
    and query, not the loopback address the server is bound to."""
    proxied = Harness(store, public_base_url="https://tracker.example.com/proxy")
    running = Served(proxied.receiver)
    try:
        path = f"/hubspot/webhooks/{TENANT}?portal=62515"
        public = "https://tracker.example.com/proxy" + path
        body = body_of(event(11))
        assert running.post(body, v3_headers(public, body), path=path)[0] == 200
        loopback = f"http://127.0.0.1:{running.port}{path}"
        status, answer = running.post(body, v3_headers(loopback, body), path=path)
        assert (status, answer["error"]) == (401, "signature")
        assert proxied.batches() == 1
    finally:
        running.close()


def _bad_signatures(url: str, body: bytes) -> dict[str, tuple[bytes, dict[str, str]]]:
    now = datetime.now(UTC)
    good = v3_headers(url, body)
    return {
        "forged": (body, {**good, "X-HubSpot-Signature-v3": "bm90IGEgc2lnbmF0dXJl"}),
        "tampered": (body.replace(b"closedwon", b"closedlost"), good),
        "stale": (body, v3_headers(url, body, at=now - timedelta(minutes=6))),
        "future": (body, v3_headers(url, body, at=now + timedelta(minutes=6))),
        "wrong_secret": (body, v3_headers(url, body, secret="another-apps-secret")),
        "unsigned": (body, {"Content-Type": "application/json"}),
        "v1_wrong": (body, {"X-HubSpot-Signature": sign_v1("nope", body),
                            "X-HubSpot-Signature-Version": "v1"}),
    }


@pytest.mark.parametrize("case", ["forged", "tampered", "stale", "future", "wrong_secret",
                                  "unsigned", "v1_wrong"])
def test_bad_signatures_are_refused_with_401_and_store_nothing(
        harness: Harness, served: Served, case: str) -> None:
    """Forged, tampered, stale, future-dated, wrong-secret and unsigned requests get 401,
    store no event and queue no job, and are counted and logged."""
    body, headers = _bad_signatures(served.url, body_of(event(1)))[case]
    status, answer = served.post(body, headers)
    assert (status, answer["error"]) == (401, "signature")
    assert (harness.batches(), harness.jobs()) == (0, 0)
    [refusal] = harness.store.webhook_refusal_stats(TENANT)
    assert (refusal.reason, refusal.refused) == ("signature", 1)
    [entry] = harness.store.read_log(TENANT, what="webhook.refused").entries
    assert SECRET not in entry.message
    assert "401" in entry.message


def test_size_limit_answers_413_early_and_while_reading(store: SqlStateStore) -> None:
    """A Content-Length over the limit is refused without reading the body; an actual body
    over the limit is refused too; nothing is stored."""
    small = Harness(store, max_body_bytes=2000)
    running = Served(small.receiver)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
        conn.putrequest("POST", f"/hubspot/webhooks/{TENANT}")
        conn.putheader("Content-Length", str(50 * 1024 * 1024))
        conn.endheaders()  # the 50 MiB body is never sent: the answer must not wait for it
        response = conn.getresponse()
        assert response.status == 413
        conn.close()
        big = body_of(*[event(n) for n in range(1, 40)])
        assert len(big) > 2000
        status = small.receiver.handle("POST", running.url, v3_headers(running.url, big), big,
                                       tenant_key=str(TENANT))[0]
        assert status == 413
        assert (small.batches(), small.jobs()) == (0, 0)
    finally:
        running.close()


@pytest.mark.parametrize(("headers", "status"), [
    ("Content-Length: abc", 400),
    ("Content-Length: -5", 400),
    ("Content-Length: \u00b2", 400),  # a digit to str.isdigit, not to HTTP
    ("Content-Length: 1000000000000", 413),
    ("Transfer-Encoding: chunked", 411),
    ("Content-Type: application/json", 411),  # no length at all
])
def test_standalone_server_refuses_bad_lengths_over_a_socket(harness: Harness, served: Served,
                                                             headers: str, status: int) -> None:
    """The standalone server answers an unreadable Content-Length 400, a missing one or a
    chunked body 411 and a huge one 413, at once and without reading a body; nothing is stored."""
    from ._raw_http import exchange

    answer = exchange(served.port, f"POST /hubspot/webhooks/{TENANT} HTTP/1.1\n"
                                   f"Host: 127.0.0.1\n{headers}")
    assert answer.status == status
    assert json.loads(answer.body)["error"]
    assert (harness.batches(), harness.jobs()) == (0, 0)


def test_unknown_tenant_and_foreign_portal_answer_404(harness: Harness, served: Served) -> None:
    """A tenant key nobody owns, and a signed batch holding another portal's event, get 404
    and nothing of the batch is stored."""
    body = body_of(event(1))
    assert served.post(body, v3_headers(served.url, body), path="/hubspot/webhooks/999")[0] == 404
    mixed = body_of(event(1), event(2, portal=111))
    status, answer = served.post(mixed, v3_headers(served.url, mixed))
    assert (status, answer["error"]) == (404, "unknown_portal")
    assert "111" in answer["message"]
    assert (harness.batches(), harness.jobs()) == (0, 0)


def test_malformed_body_answers_400_naming_the_item(harness: Harness, served: Served) -> None:
    """A signed body that is not an array of valid events gets 400 saying what was wrong."""
    items = [event(1), event(2), {k: v for k, v in event(3).items() if k != "objectId"}]
    body = body_of(*items)
    status, answer = served.post(body, v3_headers(served.url, body))
    assert (status, answer["message"]) == (400, "body[2]: lacks objectId")
    for bad, says in [(b'{"a": 1}', "an object"), (b"[]", "empty"), (b"[1", "not valid JSON"),
                      (b"[" * 5000 + b"]" * 5000, "deeply"), (b"[NaN]", "not valid JSON"),
                      (b"[1e400]", "out of range"), (b'["\\ud800"]', "surrogate"),
                      (body_of(event(1, portalId="x")), "portalId"),
                      # Deep arrays in a field the schema skips, and bytes that are not UTF-8.
                      (body_of(event(1)).replace(b'{"eventId"', b'{"x":' + b"[" * 50_000
                                                 + b"]" * 50_000 + b',"eventId"', 1), "deeply"),
                      (body_of(event(1, changeSource="ok")).replace(b"ok", b"\xed\xa0\x80"),
                       "is not UTF-8 text"),
                      # Nesting within an event that the parser reads but HubSpot never sends.
                      (body_of(event(1, x=_nested(MAX_DEPTH + 1))), "deeply")]:
        status, answer = served.post(bad, v3_headers(served.url, bad))
        assert status == 400, (bad[:20], answer)
        assert says in answer["message"], (bad[:20], answer)
    assert (harness.batches(), harness.jobs()) == (0, 0)


def _association_change(at: int = T0) -> dict[str, Any]:
    """An association change as HubSpot sends it: both ends named, no objectId."""
    return {"eventId": 7, "subscriptionId": 2, "portalId": int(PORTAL), "appId": 9, "occurredAt": at,
            "subscriptionType": "contact.associationChange", "attemptNumber": 0, "changeSource": "USER",
            "associationType": "CONTACT_TO_COMPANY", "fromObjectId": 11, "toObjectId": 12,
            "associationRemoved": False, "isPrimaryAssociation": False}


def test_an_association_change_beside_deal_events_is_skipped_not_the_delivery_refused(
    harness: Harness, served: Served
) -> None:
    """HubSpot sends all of an app's subscriptions in one delivery and does not retry a 400:
    an association change (which the plugin does not act on) must not lose the deal events."""
    body = body_of(event(1), _association_change(), event(2))
    status, answer = served.post(body, v3_headers(served.url, body))
    assert (status, answer) == (200, {"received": 2})
    assert harness.split() == 1 and harness.rows() == 2
    harness.drain()
    assert sorted(applied[0] for applied in harness.applied()) == ["1", "2"]
    only = body_of(_association_change())
    assert served.post(only, v3_headers(served.url, only)) == (200, {"received": 0})
    assert harness.batches() == 0
    bad = body_of(_association_change(), event(3), {k: v for k, v in event(4).items() if k != "objectId"})
    status, answer = served.post(bad, v3_headers(served.url, bad))
    assert (status, answer["message"]) == (400, "body[2]: lacks objectId")  # counted as sent


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_invalid_utf8_in_an_ignored_key_is_refused_at_receipt(harness: Harness,
                                                               served: Served) -> None:
    """Bytes that are not UTF-8 in a key the schema ignores get 400 at receipt: the receiver
    reads every byte as the split will, so nothing acknowledged is found unreadable later."""
    body = body_of(event(1), event(2)).replace(b'{"eventId"', b'{"x\xc0\xaf":1,"eventId"', 1)
    status, answer = served.post(body, v3_headers(served.url, body))
    assert (status, answer["error"]) == (400, "malformed")
    assert answer["message"].startswith("body: is not UTF-8 text (byte 4 ")
    assert (harness.batches(), harness.jobs()) == (0, 0)


@pytest.mark.parametrize("brackets_elsewhere", [False, True])
def test_the_depth_limit_is_the_same_whatever_else_the_body_holds(brackets_elsewhere: bool) -> None:
    """Arrays nested MAX_DEPTH - 1 deep inside an event are accepted and one more is refused,
    with or without brackets in another event's text (which decide whether the body is walked)."""
    other = event(2, changeSource="[" * 40) if brackets_elsewhere else event(2)
    assert len(check_batch(body_of(event(1, x=_nested(MAX_DEPTH - 1)), other))) == 2
    with pytest.raises(WebhookPayloadError, match="deeply"):
        check_batch(body_of(event(1, x=_nested(MAX_DEPTH)), other))


BAD_VALUES = {"portalId": "x", "objectId": 0, "occurredAt": 5, "subscriptionType": "Deal",
              "eventType": "deal", "eventId": -1, "subscriptionId": "1", "appId": 1.5,
              "attemptNumber": True, "propertyName": "p" * 256, "propertyValue": {"a": 1},
              "changeSource": 7, "sourceId": ["s"], "changeFlag": "f" * 256,
              "primaryObjectId": "1" * 21, "mergedObjectIds": ["x"], "newObjectId": -3}


@pytest.mark.parametrize("field", sorted(BAD_VALUES))
def test_each_wrong_field_is_named_in_the_projects_own_words(field: str) -> None:
    """A wrong value in any event field is refused with the rule the project states for it,
    whatever the installed msgspec would have said."""
    body = body_of(event(1), event(2, **{field: BAD_VALUES[field]}))
    with pytest.raises(WebhookPayloadError) as refused:
        check_batch(body)
    assert str(refused.value) == f"body[1].{field}: {RULES[field]}"
    assert refused.value.path == f"body[1].{field}"


def test_every_wire_field_has_a_rule_and_a_test() -> None:
    """Each field the wire schema reads has a refusal text and a bad value tested above."""
    names = {f.encode_name for f in msgspec.structs.fields(WireEvent)}
    assert names == set(RULES) == set(BAD_VALUES)


def test_a_refused_event_in_the_inbox_is_named_in_the_projects_own_words() -> None:
    """An inbox event read again is checked by the same rules: the culprit field is named."""
    with pytest.raises(WebhookPayloadError) as refused:
        WebhookEvent.from_payload(event(1, objectId="12a"), "inbox[4]")
    assert str(refused.value) == f"inbox[4].objectId: {RULES['objectId']}"
    with pytest.raises(WebhookPayloadError, match=r"^inbox\[4\]: lacks occurredAt$"):
        WebhookEvent.from_payload({k: v for k, v in event(1).items() if k != "occurredAt"},
                                  "inbox[4]")
    with pytest.raises(WebhookPayloadError, match=r"^inbox\[4\]: is a string; each event"):
        WebhookEvent.from_payload("x", "inbox[4]")


def test_internal_failure_answers_503_without_a_traceback(harness: Harness,
                                                          served: Served) -> None:
    """When the inbox cannot be written (its table is gone), the answer is 503, so HubSpot
    retries, and the body shows no traceback or internals."""
    with harness.store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE hubspot_webhook_batches"))
    body = body_of(event(1))
    status, answer = served.post(body, v3_headers(served.url, body))
    assert status == 503
    assert "Traceback" not in json.dumps(answer)
    assert "hubspot_webhook_batches" not in str(answer)
    assert harness.jobs() == 0


def test_refusal_log_is_flood_protected(store: SqlStateStore) -> None:
    """Hundreds of bad requests write at most N log lines per reason per minute; the rest
    are counted and reported with the next logged refusal."""
    clock = FakeClock()
    flooded = Harness(store, clock=clock, refusal_log_per_minute=3)
    url = "http://127.0.0.1/hubspot/webhooks/7"
    for _ in range(200):
        assert flooded.receiver.handle("POST", url, {}, b"[]", tenant_key=str(TENANT))[0] == 401
    assert len(store.read_log(TENANT, what="webhook.refused", limit=500).entries) == 3
    clock.advance(timedelta(minutes=1, seconds=1))
    flooded.receiver.handle("POST", url, {}, b"[]", tenant_key=str(TENANT))
    newest = store.read_log(TENANT, what="webhook.refused", limit=1).entries[0]
    assert "197 similar refusals" in newest.message
    [refusal] = store.webhook_refusal_stats(TENANT)
    assert (refusal.refused, refusal.suppressed) == (201, 197)


def test_host_route_handles_contract_requests(harness: Harness) -> None:
    """The receiver's host route takes the contract's HttpRequest and answers an HttpResponse."""
    route = harness.receiver.route()
    assert (route.method, route.path, route.permission) == (
        "POST", "hubspot/webhooks/{tenant_id}", None)
    url = "https://tracker.example.com/plugins/hubspot/webhooks/7"
    body = body_of(event(1))
    response = route.handler(HttpRequest("POST", url, v3_headers(url, body), body,
                                         path_params={"tenant_id": str(TENANT)}))
    assert response.status == 200
    assert json.loads(response.body) == {"received": 1}


# -- group commit -----------------------------------------------------------------------------


def drafts_of(*events: dict[str, Any]) -> list[InboxEventDraft]:
    return _drafts(parse_batch(body_of(*events)))


class HeldWrites:
    """Records each group the store writes; the first write waits until released."""

    def __init__(self, store: SqlStateStore) -> None:
        self.groups: list[int] = []
        self.entered, self.release = threading.Event(), threading.Event()
        self._write = store._store_received
        store._store_received = self.write  # type: ignore[method-assign]  # spy on groups

    def write(self, group: Sequence[Any]) -> list[int]:
        self.groups.append(len(group))
        if len(self.groups) == 1:
            self.entered.set()
            assert self.release.wait(30)
        return self._write(group)


def receive(store: SqlStateStore, body: Any) -> int:
    """What the receiver does with a verified ``body`` (one that is not a valid batch counts
    as one event: the tests store such bodies to see the split keep them)."""
    try:
        events = len(check_batch(body))
    except (WebhookPayloadError, TypeError):
        events = 1
    return store.receive_webhook_batch(TENANT, PORTAL, body, events=events,
                                       latest_occurred_ms=T0, job_kind=INBOX_JOB_KIND)


def receive_concurrently(store: SqlStateStore, first: bytes, rest: list[Any],
                         held: HeldWrites) -> list[int | BaseException]:
    """Receive ``first``; while its write is held, queue ``rest``; then release; outcomes."""
    outcomes: list[int | BaseException | None] = [None] * (1 + len(rest))

    def accept(index: int, body: bytes) -> None:
        try:
            outcomes[index] = receive(store, body)
        except Exception as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=accept, args=(0, first))]
    threads[0].start()
    assert held.entered.wait(30)
    deadline = time.monotonic() + 30
    for index, body in enumerate(rest, 1):
        threads.append(threading.Thread(target=accept, args=(index, body)))
        threads[-1].start()
        # One at a time, so they queue (and get their ids) in this order on a busy machine too.
        while len(store._group_commit._queue) < 1 + index:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "the deliveries did not queue"
            time.sleep(0.001)
    held.release.set()
    for thread in threads:
        thread.join(30)
    assert all(outcome is not None for outcome in outcomes)
    return outcomes  # type: ignore[return-value]  # all set, checked above


def test_deliveries_queued_behind_a_write_commit_together_and_split_with_exact_receipts(
        harness: Harness) -> None:
    """Deliveries that arrive while a write runs are committed in one next transaction with
    one webhook.inbox job; splitting them counts an event sent twice as accepted only for the
    first delivery that holds it."""
    store = harness.store
    held = HeldWrites(store)
    first = body_of(event(1), event(2))
    rest = [body_of(event(2), event(3)), body_of(event(3), event(4), event(4)),
            body_of(event(5))]
    ids = receive_concurrently(store, first, rest, held)
    assert held.groups == [1, 3]
    assert (harness.batches(), harness.jobs(), harness.rows()) == (4, 1, 0)
    [stats] = store.webhook_portal_stats(TENANT)
    assert stats.last_received_at is not None and stats.accepted == 0
    done = store.expand_webhook_batches(TENANT, lambda body: _drafts(parse_batch(body)),
                                        job_kind=JOB_KIND)
    assert [(batch, r.accepted, r.duplicates, r.jobs) for batch, r in done.receipts] == [
        (ids[0], 2, 0, 2), (ids[1], 1, 1, 1), (ids[2], 1, 2, 1), (ids[3], 1, 0, 1)]
    assert (done.unreadable, done.more) == (0, False)
    # Five object jobs, and the webhook.inbox job still pending (no runner claimed it here).
    assert (harness.batches(), harness.rows(), harness.jobs()) == (0, 5, 6)
    [stats] = store.webhook_portal_stats(TENANT)
    assert (stats.accepted, stats.duplicates) == (5, 3)


def test_a_delivery_the_database_refuses_fails_alone_in_its_group(harness: Harness) -> None:
    """When one delivery of a group violates a constraint, the group is split: the others
    are committed and answered, the culprit gets the error and leaves nothing behind."""
    store = harness.store
    held = HeldWrites(store)
    bodies = [body_of(event(n)) for n in range(1, 6)]
    bodies[2] = None  # NOT NULL in the table
    outcomes = receive_concurrently(store, bodies[0], bodies[1:], held)
    assert [type(o).__name__ for o in outcomes] == ["int", "int", "IntegrityError", "int", "int"]
    assert held.groups[:2] == [1, 4]  # then halves until the culprit is alone
    assert harness.batches() == 4
    harness.split()
    assert (harness.rows(), harness.jobs()) == (4, 4)
    assert store.pending_webhook_events(TENANT, "deal", "3") == []
    [stats] = store.webhook_portal_stats(TENANT)
    assert (stats.accepted, stats.duplicates) == (4, 0)


def test_many_concurrent_senders_are_all_answered_and_stored_once(harness: Harness,
                                                                  served: Served) -> None:
    """Eight senders posting overlapping batches at once over HTTP all get 200, and every
    distinct event is stored once, with one pending job per object."""
    bodies = [body_of(*[event(n, at=T0 + n) for n in range(k * 10 + 1, k * 10 + 16)])
              for k in range(8)]
    answers: list[tuple[int, dict[str, Any]]] = []
    start = threading.Barrier(len(bodies))

    def send(body: bytes) -> None:
        start.wait(30)
        answers.append(served.post(body, v3_headers(served.url, body)))

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == [(200, {"received": 15})] * 8
    assert (harness.batches(), harness.jobs()) == (8, 1)
    assert harness.split() == 1
    assert harness.rows() == 85
    [stats] = harness.store.webhook_portal_stats(TENANT)
    assert (stats.accepted, stats.duplicates) == (85, 8 * 15 - 85)
    assert harness.jobs() == 85


def test_inbox_and_queue_write_the_same_timestamp_text(harness: Harness) -> None:
    """Times the inbox writes through the driver are bound exactly as SQLAlchemy binds them
    elsewhere (on SQLite: text with microseconds), so they compare correctly with them."""
    store = harness.store
    whole_second = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    store._clock = lambda: whole_second
    store.accept_webhook_batch(TENANT, drafts_of(event(1)), job_kind=JOB_KIND)
    store.enqueue(TENANT, "other", {}, dedupe_key="x")
    with store.engine.connect() as conn:
        times = conn.execute(sa.text(
            "SELECT kind, run_after, created_at FROM hubspot_jobs ORDER BY kind")).all()
        received = conn.execute(sa.text(
            "SELECT received_at FROM hubspot_webhook_events")).scalar_one()
    assert times[0][1:] == times[1][1:]
    assert received == times[0][1]
    [job] = store.claim("w", kinds=[JOB_KIND])
    assert job.run_after == whole_second


# -- processing -------------------------------------------------------------------------------


def test_order_events_puts_creation_first_then_time_then_lifecycle() -> None:
    """Creation first; then occurredAt; at one instant restore, changes, merge, deletion."""
    parsed = [WebhookEvent.from_payload(e) for e in [
        event(1, "deletion", T0 + 5), event(1, at=T0 + 5), event(1, "restore", T0 + 5),
        event(1, at=T0 + 1), event(1, "creation", T0 + 9), event(1, "merge", T0 + 5)]]
    assert [(e.change, e.occurred_at_ms - T0) for e in order_events(parsed)] == [
        ("creation", 9), ("propertyChange", 1), ("restore", 5), ("propertyChange", 5),
        ("merge", 5), ("deletion", 5)]


def test_failing_applier_retries_then_dead_letters_and_replays(
        store_url: str) -> None:  # noqa: F811  # the fixture
    """Events stay unprocessed while the applier fails; the job backs off, dead-letters after
    its attempts, and a replay applies them once."""
    clock = FakeClock()
    store = open_store(store_url, clock=clock, max_attempts=2,
                       backoff=Backoff(base=timedelta(seconds=10)),
                       random_source=FixedRandom(0.5))
    try:
        failing = Harness(store, clock=clock)
        failing.applier.failures_left = 2
        body = body_of(event(1), event(1, "creation", T0 - 1))
        url = "http://x/hubspot/webhooks/7"
        assert failing.receiver.handle("POST", url, v3_headers(url, body, at=clock()), body,
                                       tenant_key="7")[0] == 200
        assert failing.drain() == 1
        [job] = store.depths(TENANT).items()
        assert job[0] == (JobState.PENDING, JOB_KIND)
        assert failing.drain() == 0  # backing off
        clock.advance(timedelta(seconds=6))
        assert failing.drain() == 1
        [dead] = store.dead_letters(TENANT, kind=JOB_KIND)
        assert "HubSpot read failed" in (dead.last_error or "")
        assert len(store.pending_webhook_events(TENANT, "deal", "1")) == 2
        assert failing.applier.calls == []
        assert store.replay(dead.id) == dead.id
        assert failing.drain() == 1
        assert [c for _o, c, _n, _v in failing.applied()] == ["creation", "propertyChange"]
        assert store.pending_webhook_events(TENANT, "deal", "1") == []
    finally:
        store.close()


def test_echoes_are_dropped_and_counted(harness: Harness) -> None:
    """Events the echo hook recognises are marked processed without being applied, and
    counted per portal."""
    harness.echo_values = {"ours"}
    url = "http://x/hubspot/webhooks/7"
    body = body_of(event(1, value="ours"), event(1, at=T0 + 1, value="theirs"),
                   event(2, value="ours"))
    assert harness.receiver.handle("POST", url, v3_headers(url, body), body,
                                   tenant_key="7")[0] == 200
    harness.drain()
    assert harness.applied() == [("1", "propertyChange", "dealstage", "theirs")]
    assert [c[2] for c in harness.applier.calls] == ["1"]  # object 2 had only an echo
    [stats] = harness.store.webhook_portal_stats(TENANT)
    assert stats.echoes == 2
    assert harness.store.pending_webhook_events(TENANT, "deal", "2") == []


def test_events_arriving_while_the_object_is_processed_get_a_job_held_back(
        harness: Harness) -> None:
    """A batch stored while its object's job runs queues a new pending job for the object,
    which is not claimed until the running job is done; nothing is missed or applied twice."""
    url = "http://x/hubspot/webhooks/7"
    first = body_of(event(1, value="a"))
    harness.receiver.handle("POST", url, v3_headers(url, first), first, tenant_key="7")
    harness.split()
    [running] = harness.store.claim("w1", kinds=[JOB_KIND])
    harness.processor.handle_job(running)  # reads "a" before the second batch arrives
    second = body_of(event(1, at=T0 + 1, value="b"))
    harness.receiver.handle("POST", url, v3_headers(url, second), second, tenant_key="7")
    harness.split()
    assert harness.jobs() == 2
    assert harness.store.claim("w2", kinds=[JOB_KIND]) == []  # held back behind w1
    harness.store.complete(running.id, "w1")
    assert harness.drain() == 1
    assert [v for *_x, v in harness.applied()] == ["a", "b"]
    assert harness.jobs() == 0


def test_batch_for_an_object_with_a_pending_job_joins_it(harness: Harness) -> None:
    """Events of an object whose job is still pending are read by that job: no second job."""
    url = "http://x/hubspot/webhooks/7"
    for n, value in enumerate(["a", "b", "c"]):
        body = body_of(event(1, at=T0 + n, value=value))
        status, _h, answer = harness.receiver.handle("POST", url, v3_headers(url, body), body,
                                                     tenant_key="7")
        assert (status, json.loads(answer)) == (200, {"received": 1})
        harness.split()
    assert harness.jobs() == 1
    assert harness.drain() == 1
    assert [v for *_x, v in harness.applied()] == ["a", "b", "c"]


def test_applier_protocol_is_satisfied_by_the_recording_applier() -> None:
    """The test applier is a real implementation of the EventApplier Protocol."""
    assert isinstance(RecordingApplier(), EventApplier)


# -- crash after the answer -------------------------------------------------------------------


def serve_main(url: str, port_file: str) -> None:
    """Child process: serve the receiver for tenant 7 until killed (no queue runner)."""
    store = open_store(url)
    secret = os.environ["WEBHOOK_TEST_SECRET"]
    receiver = WebhookReceiver(lambda key: WebhookTarget(TENANT, PORTAL, Secret(secret), store)
                               if key == str(TENANT) else None)
    server = make_wsgi_server(receiver.wsgi_app())
    Path(port_file + ".tmp").write_text(str(server.server_address[1]))
    os.replace(port_file + ".tmp", port_file)
    server.serve_forever()


def test_event_acknowledged_before_sigkill_is_processed_after_restart(
        store_url: str, tmp_path: Path) -> None:  # noqa: F811  # the fixture
    """A receiver process that answered 200 and was SIGKILLed before any processing leaves
    the event in the queue; a new process drains it and applies it."""
    url = store_url
    open_store(url).close()  # migrate before the child starts
    port_file = str(tmp_path / "port")
    child = subprocess.Popen(
        [sys.executable, "-c",
         f"from tests.test_webhooks import serve_main; serve_main({url!r}, {port_file!r})"],
        cwd=Path(__file__).resolve().parents[1], env={**os.environ,
                                                      "WEBHOOK_TEST_SECRET": SECRET})
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(port_file):
            assert child.poll() is None, "the receiver process exited"
            assert time.monotonic() < deadline, "the receiver did not start within 30 s"
            time.sleep(0.05)
        port = int(Path(port_file).read_text())
        body = body_of(event(42, "creation"), event(42, at=T0 + 1))
        public = f"http://127.0.0.1:{port}/hubspot/webhooks/{TENANT}"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", f"/hubspot/webhooks/{TENANT}", body=body,
                     headers=v3_headers(public, body))
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    store = open_store(url)
    try:
        restarted = Harness(store)
        assert restarted.drain() == 1
        assert [(o, c) for o, c, _n, _v in restarted.applied()] == [("42", "creation"),
                                                                   ("42", "propertyChange")]
    finally:
        store.close()


class _PickyApplier(RecordingApplier):
    """Batch reads fail; object 2 fails alone too (a deleted order, a bad value)."""

    def apply_many(self, tenant_id: int, work: Any) -> dict[Any, Exception]:
        raise RuntimeError("batched read failed")

    def apply(self, tenant_id: int, object_type: str, object_id: str,
              events: Sequence[WebhookEvent]) -> None:
        if object_id == "2":
            raise RuntimeError("object 2 broke")
        super().apply(tenant_id, object_type, object_id, events)


def test_one_failing_object_does_not_fail_the_others_in_a_drain(store: SqlStateStore) -> None:
    """When the batched apply fails, objects are applied one by one and only the bad one retries."""
    applier = _PickyApplier()
    processor = WebhookProcessor(lambda _tenant: store, applier)
    store.accept_webhook_batch(TENANT, drafts_of(event(1), event(2), event(3)), job_kind=JOB_KIND)
    jobs = store.claim("w", kinds=[JOB_KIND], limit=10)
    errors = processor.handle_jobs(jobs)
    assert {str(j.payload["object_id"]) for j in jobs if j.id in errors} == {"2"}
    assert sorted(object_id for object_id, *_ in applier.applied()) == ["1", "3"]


def test_jobs_whose_lease_was_lost_are_left_to_the_worker_that_took_them(
        store: SqlStateStore) -> None:
    """A job named in ``lost`` (its lease lapsed and another worker took it over) has its
    events neither applied nor marked processed here; the others are applied as usual."""
    applier = RecordingApplier()
    processor = WebhookProcessor(lambda _tenant: store, applier)
    store.accept_webhook_batch(TENANT, drafts_of(event(1), event(2), event(3)), job_kind=JOB_KIND)
    jobs = store.claim("w", kinds=[JOB_KIND], limit=10)
    taken = next(j for j in jobs if str(j.payload["object_id"]) == "2")
    assert processor.handle_jobs(jobs, lost={taken.id}) == {}
    assert sorted(object_id for object_id, *_ in applier.applied()) == ["1", "3"]
    assert len(store.pending_webhook_events(TENANT, "deal", "2")) == 1  # still the new owner's


# -- stored deliveries and their split --------------------------------------------------------


def test_a_delivery_is_stored_whole_and_its_arrival_counted_before_the_split(
        harness: Harness) -> None:
    """The answer waits for one row: the delivery's body, the tenant's webhook.inbox job and
    the portal's arrival time; its events and object jobs come with the split."""
    url = "http://x/hubspot/webhooks/7"
    body = body_of(event(1, at=T0 + 7), event(2, at=T0 + 3))
    assert harness.receiver.handle("POST", url, v3_headers(url, body), body,
                                   tenant_key="7")[0] == 200
    backlog = harness.store.webhook_backlog(TENANT)
    assert (backlog.batches, backlog.events, backlog.unreadable) == (1, 2, 0)
    assert backlog.oldest_received_at is not None
    [stats] = harness.store.webhook_portal_stats(TENANT)
    assert stats.last_occurred_at == datetime.fromtimestamp((T0 + 7) / 1000, UTC)
    [(state_kind, count)] = harness.store.depths(TENANT).items()
    assert (state_kind, count) == ((JobState.PENDING, INBOX_JOB_KIND), 1)
    with harness.store.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT body FROM hubspot_webhook_batches")).scalar_one()
    assert bytes(stored) == body
    assert harness.drain() == 2
    assert harness.store.webhook_backlog(TENANT).batches == 0


def test_an_unreadable_stored_delivery_is_kept_and_logged_and_the_rest_split(
        harness: Harness) -> None:
    """A stored body the split refuses (e.g. rules changed between versions) is kept with
    its error and logged; the deliveries around it are split and applied."""
    receive(harness.store, body_of(event(1)))
    bad = receive(harness.store, b'[{"portalId": 62515}]')
    receive(harness.store, body_of(event(3)))
    assert harness.drain() == 2
    assert sorted(o for o, *_ in harness.applied()) == ["1", "3"]
    backlog = harness.store.webhook_backlog(TENANT)
    assert (backlog.batches, backlog.unreadable) == (0, 1)
    [entry] = harness.store.read_log(TENANT, what="webhook.unreadable").entries
    assert entry.record == f"webhook-batch:{bad}" and "lacks objectId" in entry.message
    with harness.store.engine.connect() as conn:
        [(kept_id, error)] = conn.execute(sa.text(
            "SELECT id, error FROM hubspot_webhook_batches")).all()
    assert kept_id == bad and "body[0]: lacks objectId" in error
    assert (harness.split(), harness.jobs()) == (0, 0)  # kept, not retried forever


def test_a_long_backlog_is_split_in_rounds_with_a_follow_up_job(store: SqlStateStore) -> None:
    """After its rounds, the split queues its own follow-up instead of running on: a flood
    cannot hold a worker indefinitely, and nothing is left behind."""
    harness = Harness(store)
    harness.splitter = WebhookInboxSplitter(lambda _tenant: store, per_round=2, rounds=2)
    for n in range(1, 6):
        receive(store, body_of(event(n)))
    [job] = store.claim("w", kinds=[INBOX_JOB_KIND])
    harness.splitter.handle_job(job)
    assert harness.batches() == 1
    store.complete(job.id, "w")
    assert harness.drain() == 5
    assert harness.batches() == 0


def test_migration_0006_refuses_to_downgrade_over_waiting_deliveries(store_url: str) -> None:  # noqa: F811  # the fixture
    """Downgrading would drop the deliveries table: it refuses while deliveries wait."""
    from alembic import command

    from ambac_hubspot_plugin.store._engine import _alembic_config

    store = open_store(store_url)
    try:
        receive(store, body_of(event(1)))
        with (pytest.raises(RuntimeError, match="1 webhook deliveries are not processed yet "
                                                "and 0 could not be read"),
              store.engine.connect() as conn, conn.begin()):
            command.downgrade(_alembic_config(conn), "0005")
        assert Harness(store).drain() == 1
        with store.engine.connect() as conn, conn.begin():
            command.downgrade(_alembic_config(conn), "0005")
        assert "hubspot_webhook_batches" not in sa.inspect(store.engine).get_table_names()
        with store.engine.connect() as conn, conn.begin():
            command.upgrade(_alembic_config(conn), "head")
    finally:
        store.close()


def test_status_shows_waiting_and_unreadable_deliveries(harness: Harness) -> None:
    """The admin status view counts deliveries waiting for their split and unreadable ones."""
    from ambac_hubspot_plugin._status import _webhook_health
    from ambac_hubspot_plugin.settings import parse_settings

    settings = parse_settings({"portal_id": PORTAL, "webhook_client_secret": SECRET,
                               "credentials": {"kind": "private_app", "access_token": "t"}})
    receive(harness.store, b"[1]")
    harness.split()
    receive(harness.store, body_of(event(1), event(2)))
    health = _webhook_health(harness.store, TENANT, settings, datetime.now(UTC))
    assert health["waiting"]["deliveries"] == 1 and health["waiting"]["events"] == 2
    assert health["waiting"]["oldest_received_at"]
    assert health["unreadable_deliveries"] == 1
    harness.split()
    health = _webhook_health(harness.store, TENANT, settings, datetime.now(UTC))
    assert health["waiting"] == {"deliveries": 0, "events": 0, "oldest_received_at": None}


def test_a_delivery_the_database_refuses_at_the_split_is_kept_and_the_rest_split(
        harness: Harness) -> None:
    """When the database refuses a value of one delivery (here a NOT NULL), the round is
    halved until that delivery is alone; it is kept as unreadable with the database's reason
    and the others are split: one bad delivery never blocks a tenant's intake."""
    store = harness.store
    ids = [receive(store, body_of(event(n))) for n in range(1, 6)]

    def drafts_of(body: bytes) -> list[InboxEventDraft]:
        drafts = _drafts(parse_batch(body))
        if b'"objectId":3,' in body:
            return [attrs.evolve(draft, payload=None) for draft in drafts]
        return drafts

    done = store.expand_webhook_batches(TENANT, drafts_of, job_kind=JOB_KIND)
    assert sorted(batch for batch, _r in done.receipts) == [ids[0], ids[1], ids[3], ids[4]]
    assert (done.unreadable, done.more) == (1, False)
    assert (harness.rows(), store.webhook_backlog(TENANT).unreadable) == (4, 1)
    [entry] = store.read_log(TENANT, what="webhook.unreadable").entries
    assert entry.record == f"webhook-batch:{ids[2]}"
    assert "the database refused a value" in entry.message


def test_a_split_round_is_bounded_by_events_and_parses_outside_the_write(
        harness: Harness) -> None:
    """A round takes about 100 events at most on SQLite, 1,000 on PostgreSQL (but at least one
    delivery, however big), and parses the bodies before it takes the write lock, so a
    delivery received meanwhile is not held up."""
    store = harness.store
    sqlite = store.engine.dialect.name == "sqlite"
    receive(store, body_of(*[event(n) for n in range(1, 1001)]))
    for k in range(1, 9 if sqlite else 40):
        receive(store, body_of(*[event(k * 1000 + n) for n in range(1, 31)]))
    received_while_parsing: list[int] = []

    def drafts_of(body: bytes) -> list[InboxEventDraft]:
        if not received_while_parsing:  # a receiver on another thread, while we parse
            done = threading.Event()
            threading.Thread(target=lambda: (received_while_parsing.append(
                receive(store, body_of(event(99_999)))), done.set())).start()
            assert done.wait(10), "the receiver waited for the split's parsing"
        return _drafts(parse_batch(body))

    first = store.expand_webhook_batches(TENANT, drafts_of, job_kind=JOB_KIND)
    assert (first.batches, first.accepted, first.more) == (1, 1000, True)
    assert received_while_parsing
    second = store.expand_webhook_batches(TENANT, drafts_of, job_kind=JOB_KIND)
    assert (second.batches, second.accepted, second.more) == ((3, 90, True) if sqlite else (33, 990, True))


def test_many_objects_events_are_loaded_together_oldest_first(store: SqlStateStore) -> None:
    """``pending_webhook_events_of`` gives each asked object its unprocessed events, oldest
    stored first, across object types and beyond one query's chunk of ids; an object without
    any gets an empty list, and processed events are left out."""
    ids = range(1, 1203)
    for part in (ids[:600], ids[600:]):  # a delivery holds at most 1,000 events
        store.accept_webhook_batch(TENANT, drafts_of(*[event(n) for n in part]), job_kind=JOB_KIND)
    store.accept_webhook_batch(TENANT, drafts_of(event(5, at=T0 + 1), event(7, "creation", at=T0 + 2)),
                               job_kind=JOB_KIND)
    [first] = store.pending_webhook_events(TENANT, "deal", "1")
    store.finish_webhook_events(TENANT, applied=[first.id], echoes=[])
    asked = [("deal", str(n)) for n in ids] + [("company", "5"), ("deal", "999999")]
    found = store.pending_webhook_events_of(TENANT, asked)
    assert set(found) == set(asked)
    assert found[("deal", "1")] == [] and found[("company", "5")] == [] and found[("deal", "999999")] == []
    assert [(e.subscription_type, e.occurred_at_ms) for e in found[("deal", "5")]] == [
        ("deal.propertyChange", T0), ("deal.propertyChange", T0 + 1)]
    assert [e.subscription_type for e in found[("deal", "7")]] == ["deal.propertyChange", "deal.creation"]
    assert all(len(found[("deal", str(n))]) == 1 for n in ids if n not in (1, 5, 7))


def test_a_batch_of_objects_is_finished_in_one_go_and_a_failed_one_retries(harness: Harness) -> None:
    """Processing many objects' jobs together marks the events of the ones applied as
    processed, while a failed object's events stay pending for its retry."""
    store = harness.store
    store.accept_webhook_batch(TENANT, drafts_of(event(1), event(2), event(3)), job_kind=JOB_KIND)
    jobs = store.claim("w", kinds=[JOB_KIND], limit=10)
    assert len(jobs) == 3

    class FailOne(RecordingApplier):
        def apply(self, tenant_id: Any, object_type: str, object_id: str,
                  events: Sequence[WebhookEvent]) -> None:
            if object_id == "2":
                raise RuntimeError("HubSpot read failed")
            super().apply(tenant_id, object_type, object_id, events)

    applier = FailOne()
    errors = WebhookProcessor(lambda _tenant: store, applier).handle_jobs(jobs)
    assert [job.payload["object_id"] for job in jobs if job.id in errors] == ["2"]
    assert sorted(object_id for object_id, *_ in applier.applied()) == ["1", "3"]
    pending = store.pending_webhook_events_of(TENANT, [("deal", "1"), ("deal", "2"), ("deal", "3")])
    assert {key[1]: len(events) for key, events in pending.items()} == {"1": 0, "2": 1, "3": 0}


@pytest.mark.parametrize(("length", "status"), [("abc", 400), ("-5", 400), ("\u00b2", 400), ("9" * 20, 413)])
def test_the_host_route_refuses_an_unreadable_length_400_and_a_huge_one_413(
    tmp_path: Path, length: str, status: int
) -> None:
    """A host hands the request over with the headers it got: a Content-Length that is not a
    number is malformed (400), not a body "over the limit" (413)."""
    store = open_store(f"sqlite:///{tmp_path / 's.sqlite3'}")
    try:
        url, secret = "http://h/integrations/hubspot/webhooks/7", "s3cret"
        target = WebhookTarget("7", "62515", Secret(secret), store, None)
        receiver = WebhookReceiver(lambda key: target if key == "7" else None)
        body = body_of(event(1, portal=62515))
        stamp = str(int(time.time() * 1000))
        response = receiver.handle_request(HttpRequest(
            method="POST", url=url, body=body, user=None, path_params={"tenant_id": "7"}, query={},
            headers={"Content-Length": length, "X-HubSpot-Request-Timestamp": stamp,
                     "X-HubSpot-Signature-v3": sign_v3(secret, "POST", url, body, stamp)}))
        assert response.status == status and json.loads(response.body)["error"]
        assert store.depths() == {}
    finally:
        store.close()


def test_a_body_that_stops_coming_gets_408_and_frees_the_servers_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The standalone server gives a silent connection its timeout: a client that announces
    100 bytes, sends 2 and waits is answered 408 instead of holding a thread for ever."""
    import socket

    from ambac_hubspot_plugin import _wsgi_server

    monkeypatch.setattr(_wsgi_server._QuietHandler, "timeout", 0.5)
    server = make_wsgi_server(WebhookReceiver(lambda key: None).wsgi_app())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=20) as sock:
            sock.sendall(b"POST /hubspot/webhooks/7 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[{")
            answer = sock.recv(65536)  # the write side stays open, as a slow client's would
        assert answer.split(b"\r\n", 1)[0].split(b" ")[1] == b"408"
    finally:
        server.shutdown()
        server.server_close()
