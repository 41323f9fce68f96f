"""Webhook delivery from the sandbox to a loopback receiver: signatures, batching, retries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox, sign_v1


class Receiver:
    """A tiny HTTP server that records deliveries and answers scripted statuses."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.received.append((dict(self.headers), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/hubspot?x=1"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def events(self) -> list[dict[str, Any]]:
        return [event for _, body in self.received for event in json.loads(body)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def hs(receiver: Receiver) -> Iterator[Sandbox]:
    with Sandbox(rate_limits=RateLimits.unlimited()) as sandbox:
        sandbox.webhooks.set_target(receiver.url)
        sandbox.webhooks.configure(time_scale=0.0005)
        yield sandbox


def api(hs: Sandbox, method: str, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.request(
        method,
        hs.base_url + path,
        json=body,
        timeout=5,
        headers={"Authorization": f"Bearer {hs.access_token}"},
    )


def test_published_v1_vector() -> None:
    """The v1 signer reproduces HubSpot's published test vector."""
    body = (
        b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
        b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
        b'"changeFlag":"NEW","appId":54321}]'
    )
    assert sign_v1("yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy", body) == (
        "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
    )


def test_api_write_events_are_signed_v1_and_v3(hs: Sandbox, receiver: Receiver) -> None:
    """An API create and update deliver creation and propertyChange events signed with v1 and v3."""
    hs.webhooks.subscribe("deal.creation")
    hs.webhooks.subscribe("deal.propertyChange", "dealstage")
    created = api(
        hs,
        "POST",
        "/crm/v3/objects/deals",
        {"properties": {"dealname": "X", "dealstage": "contractsent"}},
    )
    deal_id = created.json()["id"]
    api(hs, "PATCH", f"/crm/v3/objects/deals/{deal_id}", {"properties": {"dealstage": "closedwon"}})
    assert hs.webhooks.flush(5)
    events = receiver.events()
    kinds = sorted((e["subscriptionType"], e.get("propertyValue")) for e in events)
    assert kinds == [
        ("deal.creation", None),
        ("deal.propertyChange", "closedwon"),
        ("deal.propertyChange", "contractsent"),
    ]
    for event in events:
        assert event["objectId"] == int(deal_id)
        assert event["portalId"] == hs.portal_id
        assert event["appId"] == hs.app_id
        assert event["changeSource"] == "API"
        assert event["sourceId"] == str(hs.app_id)
        assert event["attemptNumber"] == 0
        assert isinstance(event["occurredAt"], int)
    secret = hs.client_secret.encode()
    for headers, body in receiver.received:
        assert headers["X-HubSpot-Signature-Version"] == "v1"
        assert headers["X-HubSpot-Signature"] == hashlib.sha256(secret + body).hexdigest()
        timestamp = headers["X-HubSpot-Request-Timestamp"]
        expected = base64.b64encode(
            hmac.new(
                secret, b"POST" + receiver.url.encode() + body + timestamp.encode(), hashlib.sha256
            ).digest()
        ).decode()
        assert headers["X-HubSpot-Signature-v3"] == expected


def test_ui_changes_have_crm_ui_source(hs: Sandbox, receiver: Receiver) -> None:
    """``add_object``/``update_object`` emit events with changeSource CRM_UI."""
    hs.webhooks.subscribe("company.propertyChange", "name")
    company = hs.add_object("companies", {"name": "Acme"})
    hs.update_object("companies", company, {"name": "Acme Corp"})
    assert hs.webhooks.flush(5)
    events = receiver.events()
    assert [e["propertyValue"] for e in sorted(events, key=lambda e: e["eventId"])] == [
        "Acme",
        "Acme Corp",
    ]
    assert {e["changeSource"] for e in events} == {"CRM_UI"}


def test_only_subscribed_properties_fire(hs: Sandbox, receiver: Receiver) -> None:
    """A propertyChange subscription fires for its property only, and not for unchanged values."""
    hs.webhooks.subscribe("deal.propertyChange", "amount")
    deal = hs.add_object("deals", {"dealname": "X"})
    hs.update_object("deals", deal, {"dealname": "Y"})
    hs.update_object("deals", deal, {"amount": "10"})
    hs.update_object("deals", deal, {"amount": "10"})
    assert hs.webhooks.flush(5)
    assert [(e["propertyName"], e["propertyValue"]) for e in receiver.events()] == [
        ("amount", "10")
    ]
    with pytest.raises(ValueError, match="hs_lastmodifieddate"):
        hs.webhooks.subscribe("deal.propertyChange", "hs_lastmodifieddate")


def test_batches_stay_under_100_events(hs: Sandbox, receiver: Receiver) -> None:
    """250 changes arrive in requests of fewer than 100 events each, all of them exactly once."""
    hs.webhooks.subscribe("deal.creation")
    inputs = [{"properties": {"dealname": f"D{i}"}} for i in range(100)]
    for _ in range(2):
        api(hs, "POST", "/crm/v3/objects/deals/batch/create", {"inputs": inputs})
    api(hs, "POST", "/crm/v3/objects/deals/batch/create", {"inputs": inputs[:50]})
    assert hs.webhooks.flush(5)
    sizes = [len(json.loads(body)) for _, body in receiver.received]
    assert max(sizes) < 100
    assert sum(sizes) == 250
    assert len({e["eventId"] for e in receiver.events()}) == 250


def test_retries_after_500_with_growing_attempt_number(hs: Sandbox, receiver: Receiver) -> None:
    """A 500 (and a 429) is retried with attemptNumber increasing until a 2xx."""
    hs.webhooks.subscribe("deal.deletion")
    receiver.statuses = [500, 429]
    deal = hs.add_object("deals", {"dealname": "X"})
    hs.archive_object("deals", deal)
    assert hs.webhooks.flush(10)
    assert [e["attemptNumber"] for e in receiver.events()] == [0, 1, 2]
    assert [d.status for d in hs.webhooks.deliveries] == [500, 429, 204]


def test_no_retry_after_400(hs: Sandbox, receiver: Receiver) -> None:
    """A 4xx other than 429 is not retried."""
    hs.webhooks.subscribe("deal.creation")
    receiver.statuses = [400]
    hs.add_object("deals", {"dealname": "X"})
    assert hs.webhooks.flush(5)
    assert len(receiver.received) == 1
    assert [d.status for d in hs.webhooks.deliveries] == [400]


def test_gives_up_after_max_attempts(hs: Sandbox, receiver: Receiver) -> None:
    """Failures are retried up to ``max_attempts`` deliveries in all, then dropped."""
    hs.webhooks.configure(max_attempts=3)
    hs.webhooks.subscribe("deal.creation")
    receiver.statuses = [503] * 5
    hs.add_object("deals", {"dealname": "X"})
    assert hs.webhooks.flush(5)
    assert len(receiver.received) == 3


def test_unreachable_target_is_retried_and_logged(hs: Sandbox) -> None:
    """A connection error counts as a failure: logged without status and retried."""
    hs.webhooks.configure(max_attempts=2)
    hs.webhooks.set_target("http://127.0.0.1:9/nothing")
    hs.webhooks.subscribe("deal.creation")
    hs.add_object("deals", {"dealname": "X"})
    assert hs.webhooks.flush(5)
    assert [d.status for d in hs.webhooks.deliveries] == [None, None]
    assert all(d.error for d in hs.webhooks.deliveries)


def test_duplicate_switch_sends_each_batch_twice(hs: Sandbox, receiver: Receiver) -> None:
    """With ``duplicate`` on every event arrives twice with the same eventId."""
    hs.webhooks.configure(duplicate=True)
    hs.webhooks.subscribe("deal.creation")
    hs.add_object("deals", {"dealname": "X"})
    assert hs.webhooks.flush(5)
    ids = [e["eventId"] for e in receiver.events()]
    assert len(ids) == 2
    assert ids[0] == ids[1]


def test_shuffle_switch_reorders_events(hs: Sandbox, receiver: Receiver) -> None:
    """With ``shuffle`` on, events of one burst arrive out of order (all of them)."""
    hs.webhooks.configure(shuffle=True)
    hs.webhooks.subscribe("deal.creation")
    api(
        hs,
        "POST",
        "/crm/v3/objects/deals/batch/create",
        {"inputs": [{"properties": {"dealname": str(i)}} for i in range(50)]},
    )
    assert hs.webhooks.flush(5)
    ids = [e["eventId"] for e in receiver.events()]
    assert sorted(ids) != ids
    assert len(set(ids)) == 50


def test_merge_and_restore_events(hs: Sandbox, receiver: Receiver) -> None:
    """Merges send primaryObjectId/mergedObjectIds/newObjectId; restores send ``*.restore``."""
    hs.webhooks.subscribe("contact.merge")
    hs.webhooks.subscribe("contact.restore")
    first = hs.add_object("contacts", {"email": "a@x.com"})
    second = hs.add_object("contacts", {"email": "b@x.com"})
    api(
        hs,
        "POST",
        "/crm/v3/objects/contacts/merge",
        {"primaryObjectId": first, "objectIdToMerge": second},
    )
    third = hs.add_object("contacts", {"email": "c@x.com"})
    hs.archive_object("contacts", third)
    hs.restore_object("contacts", third)
    assert hs.webhooks.flush(5)
    by_type = {e["subscriptionType"]: e for e in receiver.events()}
    merge = by_type["contact.merge"]
    assert merge["primaryObjectId"] == int(first)
    assert merge["mergedObjectIds"] == [int(second)]
    assert merge["newObjectId"] == int(first)
    assert by_type["contact.restore"]["objectId"] == int(third)


def test_disabled_webhooks_stay_silent(hs: Sandbox, receiver: Receiver) -> None:
    """With ``enabled`` off (HubSpot going silent) changes produce no deliveries."""
    hs.webhooks.subscribe("deal.creation")
    hs.webhooks.enabled = False
    hs.add_object("deals", {"dealname": "X"})
    assert hs.webhooks.flush(5)
    assert receiver.received == []


def test_oauth_app_gets_its_own_signed_deliveries(hs: Sandbox, receiver: Receiver) -> None:
    """Events for an OAuth app carry its appId and are signed with its client secret."""
    app = hs.add_oauth_app("client", "oauth-secret", "refresh")
    hs.webhooks.set_target(receiver.url, app_id=app.app_id)
    hs.webhooks.subscribe("deal.creation", app_id=app.app_id)
    hs.add_object("deals", {"dealname": "X"})
    assert hs.webhooks.flush(5)
    headers, body = receiver.received[0]
    assert json.loads(body)[0]["appId"] == app.app_id
    assert headers["X-HubSpot-Signature"] == sign_v1("oauth-secret", body)
