"""Real-time intake (private): the webhook receiver, its durable inbox and ordered per-object
processing.

A host does not import this package: it lists the plugin's ``hubspot-webhooks`` route
(``POST hubspot/webhooks/{tenant_id}``) from ``ambac_http_routes``, and the plugin wires the
rest itself. A delivery goes through one module per step:

- :mod:`._wire`: the wire format and the one parser of a delivery body (msgspec, loaded on
  first use).
- :mod:`._events`: :class:`WebhookEvent`, reading a body into events, an event's
  :func:`dedupe_key` and inbox draft, and the job kinds.
- :mod:`._receiver`: :class:`WebhookReceiver` verifies the signature on the raw bytes,
  validates the batch, stores it whole in the tenant's inbox with a ``webhook.inbox`` job,
  in one transaction, and only then answers 200.
- :mod:`._splitter`: :class:`WebhookInboxSplitter`, the ``webhook.inbox`` job handler, turns
  stored deliveries into deduplicated events and queues one ``webhook.object`` job per
  object that got new ones, in one transaction per round.
- :mod:`._processor`: :class:`WebhookProcessor`, the ``webhook.object`` job handler, loads
  one object's unprocessed events, orders them, drops echoes of our own writes and hands the
  rest to an :class:`EventApplier`; events are marked processed only after it succeeded.
- :mod:`._apply`: :class:`EngineApplier`, the applier that runs the events through the
  inbound engine.
- :mod:`._install`: the receiver and the two job handlers, for the plugin's one assembly of
  job handlers (``_jobs``).

The web server that runs the receiver's WSGI app without a host is ``_wsgi_server``.
See ``docs/webhooks.md``.
"""

from __future__ import annotations

from ._apply import EngineApplier
from ._events import INBOX_JOB_KIND, JOB_KIND, WebhookEvent, check_batch, dedupe_key, event_drafts, parse_batch
from ._install import webhook_intake, webhook_secret
from ._processor import EchoCheck, EventApplier, WebhookProcessor, order_events
from ._receiver import DEFAULT_MAX_BODY_BYTES, ROUTE_PATH, WebhookReceiver, WebhookTarget, public_uri
from ._splitter import InboxQueue, WebhookInboxSplitter, split_drafts

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "INBOX_JOB_KIND",
    "JOB_KIND",
    "ROUTE_PATH",
    "EchoCheck",
    "EngineApplier",
    "EventApplier",
    "InboxQueue",
    "WebhookEvent",
    "WebhookInboxSplitter",
    "WebhookProcessor",
    "WebhookReceiver",
    "WebhookTarget",
    "check_batch",
    "dedupe_key",
    "event_drafts",
    "order_events",
    "parse_batch",
    "public_uri",
    "split_drafts",
    "webhook_intake",
    "webhook_secret",
]
