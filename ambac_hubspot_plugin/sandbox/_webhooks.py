"""Webhook subscriptions and the background sender that delivers events like HubSpot does."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import itertools
import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import attrs

from ._auth import App
from ._util import Clock, to_ms

_KINDS = frozenset({"creation", "deletion", "merge", "restore", "propertyChange"})
_OBJECTS = frozenset({"deal", "company", "contact"})
# HubSpot spreads its 10 retries over about a day; these grow the same way and are scaled down
# by ``time_scale`` in tests.
RETRY_DELAYS = (60.0, 120.0, 300.0, 600.0, 1200.0, 2400.0, 3600.0, 7200.0, 14400.0, 28800.0)


@attrs.frozen
class Subscription:
    """One webhook subscription of one app."""

    id: int
    app_id: int
    subscription_type: str
    property_name: str | None = None


@attrs.frozen
class DeliveryAttempt:
    """One POST the sender made: which events, which attempt, what came back."""

    app_id: int
    attempt_number: int
    event_ids: tuple[int, ...]
    status: int | None
    error: str | None
    duplicate: bool
    time: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def sign_v1(secret: str, body: bytes) -> str:
    """HubSpot's v1 signature: hex SHA-256 of client secret + body."""
    return hashlib.sha256(secret.encode() + body).hexdigest()


def sign_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """HubSpot's v3 signature: base64 HMAC-SHA256 of method + URI + body + timestamp."""
    message = method.encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


class Webhooks:
    """Subscriptions per app, a queue, and a sender thread with HubSpot's delivery habits.

    Tuning for tests: ``time_scale`` shrinks retry delays, ``duplicate`` sends every batch
    twice, ``shuffle`` sends events out of order, ``enabled = False`` silences delivery
    (events are dropped, as when HubSpot subscriptions stop firing).
    """

    def __init__(
        self, portal_id: int, clock: Clock, apps: Callable[[], dict[int, App]], default_app_id: int
    ) -> None:
        self.portal_id = portal_id
        self._clock = clock
        self._apps = apps
        self.default_app_id = default_app_id
        self.time_scale = 1.0
        self.timeout = 5.0
        self.max_attempts = 10
        self.max_concurrency = 10
        self.batch_size = 99
        self.batch_window = 0.02
        self.duplicate = False
        self.shuffle = False
        self.enabled = True
        self.subscriptions: dict[int, Subscription] = {}
        self.targets: dict[int, str] = {}
        self.deliveries: list[DeliveryAttempt] = []
        self.events: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._event_ids = itertools.count(100_000)
        self._random = random.Random(0)  # noqa: S311  # shuffles delivery order, not secrets
        self._cond = threading.Condition()
        self._queue: dict[int, deque[dict[str, Any]]] = {}
        self._retries: list[tuple[float, int, list[dict[str, Any]]]] = []
        self._in_flight = 0
        self._closed = False
        self._executor: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------- configuration
    def subscribe(
        self, subscription_type: str, property_name: str | None = None, *, app_id: int | None = None
    ) -> Subscription:
        """Subscribe an app (default: the private app) to e.g. ``deal.propertyChange``."""
        object_name, _, kind = subscription_type.partition(".")
        if object_name not in _OBJECTS or kind not in _KINDS:
            raise ValueError(f"unsupported subscription type {subscription_type!r}")
        if kind == "propertyChange" and not property_name:
            raise ValueError("propertyChange subscriptions need a property_name")
        if property_name in ("hs_lastmodifieddate", "lastmodifieddate"):
            raise ValueError(f"HubSpot does not allow subscribing to {property_name}")
        with self._cond:
            subscription = Subscription(
                next(self._ids),
                app_id or self.default_app_id,
                subscription_type,
                property_name if kind == "propertyChange" else None,
            )
            self.subscriptions[subscription.id] = subscription
            return subscription

    def unsubscribe(self, subscription_id: int) -> None:
        with self._cond:
            self.subscriptions.pop(subscription_id, None)

    def set_target(self, url: str, *, app_id: int | None = None) -> None:
        """Where an app's events are POSTed (HubSpot's one target URL per app)."""
        with self._cond:
            self.targets[app_id or self.default_app_id] = url

    def configure(self, **settings: Any) -> None:
        """Set several tuning attributes at once (``time_scale``, ``duplicate``, ...)."""
        for name, value in settings.items():
            if not hasattr(self, name) or name.startswith("_"):
                raise AttributeError(f"unknown webhook setting {name!r}")
            setattr(self, name, value)

    # --------------------------------------------------------------- intake
    def on_changes(self, changes: list[dict[str, Any]]) -> None:
        """Called by the portal for every change; turns matching ones into queued events."""
        if not self.subscriptions or not self.enabled:
            return
        with self._cond:
            for change in changes:
                for subscription in self.subscriptions.values():
                    if subscription.subscription_type != change["subscriptionType"]:
                        continue
                    if (
                        subscription.property_name is not None
                        and subscription.property_name != change.get("propertyName")
                    ):
                        continue
                    event = {
                        "eventId": next(self._event_ids),
                        "subscriptionId": subscription.id,
                        "portalId": self.portal_id,
                        "appId": subscription.app_id,
                        "occurredAt": change["occurredAt"],
                        "subscriptionType": change["subscriptionType"],
                        "attemptNumber": 0,
                        "objectId": change["objectId"],
                        "changeSource": change["changeSource"],
                    }
                    for key in (
                        "sourceId",
                        "propertyName",
                        "propertyValue",
                        "primaryObjectId",
                        "mergedObjectIds",
                        "newObjectId",
                    ):
                        if key in change:
                            event[key] = change[key]
                    if change["subscriptionType"].endswith(".creation"):
                        event["changeFlag"] = "NEW"
                    self.events.append(event)
                    self._queue.setdefault(subscription.app_id, deque()).append(event)
            self._cond.notify_all()

    # ---------------------------------------------------------------- sender
    def start(self) -> None:
        self._executor = ThreadPoolExecutor(
            self.max_concurrency, thread_name_prefix="sandbox-webhook"
        )
        self._thread = threading.Thread(
            target=self._run, name="sandbox-webhook-sender", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._retries.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(5)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event was delivered or given up; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(self._queue.values()) or self._retries or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
            return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not any(self._queue.values()) and not self._due():
                    wait = (
                        min((at for at, _, _ in self._retries), default=time.monotonic() + 0.5)
                        - time.monotonic()
                    )
                    self._cond.wait(max(0.001, min(wait, 0.5)))
                if self._closed:
                    return
            time.sleep(self.batch_window)  # let a burst of changes land in the same batches
            with self._cond:
                batches = self._take_batches()
                self._in_flight += len(batches)
            for app_id, events in batches:
                assert self._executor is not None
                try:
                    self._executor.submit(self._deliver, app_id, events)
                except RuntimeError:  # shut down while closing
                    return

    def _due(self) -> bool:
        return any(at <= time.monotonic() for at, _, _ in self._retries)

    def _take_batches(self) -> list[tuple[int, list[dict[str, Any]]]]:
        batches: list[tuple[int, list[dict[str, Any]]]] = []
        now = time.monotonic()
        due = [item for item in self._retries if item[0] <= now]
        self._retries = [item for item in self._retries if item[0] > now]
        batches += [(app_id, events) for _, app_id, events in due]
        for app_id, queue in self._queue.items():
            pending = list(queue)
            queue.clear()
            if self.shuffle:
                self._random.shuffle(pending)
            for start in range(0, len(pending), self.batch_size):
                batches.append((app_id, pending[start : start + self.batch_size]))
        return batches

    def _deliver(self, app_id: int, events: list[dict[str, Any]]) -> None:
        try:
            status = self._post(app_id, events, duplicate=False)
            if self.duplicate:
                self._post(app_id, events, duplicate=True)
            attempt = events[0]["attemptNumber"] if events else 0
            retry = status is None or status == 429 or status >= 500
            with self._cond:
                if retry and attempt + 1 < self.max_attempts and not self._closed:
                    delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)] * self.time_scale
                    again = [{**event, "attemptNumber": attempt + 1} for event in events]
                    self._retries.append((time.monotonic() + delay, app_id, again))
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def _post(self, app_id: int, events: list[dict[str, Any]], *, duplicate: bool) -> int | None:
        url = self.targets.get(app_id)
        app = self._apps().get(app_id)
        status: int | None = None
        error: str | None = None
        if url is None or app is None:
            error = "no target URL configured for this app"
        else:
            body = json.dumps(events, separators=(",", ":")).encode()
            timestamp = str(to_ms(self._clock()))
            headers = {
                "Content-Type": "application/json",
                "X-HubSpot-Signature": sign_v1(app.client_secret, body),
                "X-HubSpot-Signature-Version": "v1",
                "X-HubSpot-Signature-v3": sign_v3(app.client_secret, "POST", url, body, timestamp),
                "X-HubSpot-Request-Timestamp": timestamp,
                "User-Agent": "HubSpot Connect 2.0 (http://dev.hubspot.com/) (sandbox)",
            }
            parts = urlsplit(url)
            connection_type = (
                http.client.HTTPSConnection
                if parts.scheme == "https"
                else http.client.HTTPConnection
            )
            connection = connection_type(parts.netloc, timeout=self.timeout)
            try:
                target = parts.path or "/"
                if parts.query:
                    target += "?" + parts.query
                connection.request("POST", target, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                error = f"{type(exc).__name__}: {exc}"
            finally:
                connection.close()
        with self._cond:
            self.deliveries.append(
                DeliveryAttempt(
                    app_id,
                    events[0]["attemptNumber"] if events else 0,
                    tuple(e["eventId"] for e in events),
                    status,
                    error,
                    duplicate,
                    time.time(),
                )
            )
        return status
