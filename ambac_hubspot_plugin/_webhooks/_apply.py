"""Webhook events, applied through the same inbound engine as scheduled syncs.

The processor hands over one object's events, ordered and with our own echoes removed. They
only say *that* something changed: the applier reads the object's current state from HubSpot
and lets the engine decide, so stale, repeated or reordered events cannot do harm, and a deal
reaching a trigger stage becomes exactly one order whichever path sees it first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from .._deal_properties import DELETED_FLAG
from .._merges import move_merged, note_on_order
from ..store import LogLevel

if TYPE_CHECKING:
    from .._inbound import InboundSync
    from ..store import Link
    from ._events import WebhookEvent

__all__ = ["EngineApplier"]

PLURAL = {"company": "companies", "contact": "contacts"}


class EngineApplier:
    """Applies webhook events for deals, companies and contacts (an ``EventApplier``)."""

    def __init__(self, engine_for: Callable[[str], InboundSync]) -> None:
        self._engine_for = engine_for

    def apply(self, tenant_id: str, object_type: str, object_id: str, events: Sequence[WebhookEvent]) -> None:
        """Bring the host in line with one object's current state in HubSpot."""
        self.apply_many(tenant_id, {(object_type, object_id): events})

    def apply_many(self, tenant_id: str, work: Mapping[tuple[str, str], Sequence[WebhookEvent]]
                   ) -> dict[tuple[str, str], Exception]:
        """Apply many objects' events with batched reads: one read for all the deals, one engine
        pass over them (so their associations are read together), one per companies/contacts."""
        engine = self._engine_for(tenant_id)
        deals = {object_id: events for (object_type, object_id), events in work.items() if object_type == "deal"}
        for events in deals.values():
            for event in events:
                if event.change == "merge":
                    self._merge(engine, event)
        if deals:
            current = {d.id: d for d in engine.client.read_deals(sorted(deals), engine.mapping.deal_properties)}
            links = engine.store.get_links_by_hubspot(tenant_id, engine.portal_id, "deal", list(deals))
            for deal_id, events in deals.items():
                link = links.get(deal_id)
                if deal_id not in current:
                    if link is not None and any(e.change == "deletion" for e in events):
                        self._flag_deleted(engine, link)
                elif link is not None and link.synced.get(DELETED_FLAG):
                    self._clear_deleted(engine, link)
            engine.process([current[d] for d in sorted(current)], trigger="webhook")
        for object_type, plural in PLURAL.items():
            ids = sorted(object_id for (kind, object_id) in work if kind == object_type)
            if ids:
                engine.update_linked(plural, ids)
        return {}

    def _merge(self, engine: InboundSync, event: WebhookEvent) -> None:
        """Move the order of a merged-away deal to the surviving deal, and say so; under the
        surviving deal's claim, which a sync chunk holds from reading the deal's link to writing
        the link of an order it makes for it: the chunk adopts the merged deal's order, or has
        made and linked one (then both orders stay, and the log says to archive one), never a
        second order without a link. Holding no other claim, it waits up to 15 s, else
        ``ClaimTimeoutError`` (the webhook job is retried with the queue's backoff)."""
        survivor = event.new_object_id or event.primary_object_id or event.object_id
        merged = {*event.merged_object_ids, event.primary_object_id or survivor} - {survivor}
        if not merged:
            return
        with engine.store.hold_claim(engine.tenant_id, f"deal:{survivor}"):
            for old in sorted(merged):
                move_merged(engine.host, engine.store, engine.tenant_id, engine.portal_id, old, survivor,
                            what="webhook.merge")

    def _flag_deleted(self, engine: InboundSync, link: Link) -> None:
        with _claimed(engine, link) as current:
            if current is None or current.synced.get(DELETED_FLAG):
                return
            engine.store.update_link_synced(current.id, {**current.synced, DELETED_FLAG: engine.clock().isoformat()})
        message = (f"deal {link.hubspot_id} was deleted in HubSpot; the order is kept. Restore the deal in "
                   "HubSpot to link it again, or archive the order if it is no longer wanted.")
        engine.store.log(engine.tenant_id, LogLevel.WARNING, "webhook.deletion", message,
                         record=f"deal:{link.hubspot_id}")
        _note(engine, link.host_id, message)

    def _clear_deleted(self, engine: InboundSync, link: Link) -> None:
        with _claimed(engine, link) as current:
            if current is None or not current.synced.get(DELETED_FLAG):
                return
            engine.store.update_link_synced(current.id, {k: v for k, v in current.synced.items() if k != DELETED_FLAG})
        message = f"deal {link.hubspot_id} was restored in HubSpot; the order follows it again"
        engine.store.log(engine.tenant_id, LogLevel.INFO, "webhook.restore", message,
                         record=f"deal:{link.hubspot_id}")
        _note(engine, link.host_id, message)


@contextlib.contextmanager
def _claimed(engine: InboundSync, link: Link) -> Iterator[Link | None]:
    """The deal's link read again under the deal's claim, which a sync chunk holds while it
    updates its linked deals: neither's write of the link's synced values undoes the other's.
    Holding no other claim, it waits up to 15 s, else ``ClaimTimeoutError`` (the webhook job is
    retried with the queue's backoff)."""
    with engine.store.hold_claim(engine.tenant_id, f"deal:{link.hubspot_id}"):
        yield engine.store.get_link_by_hubspot(engine.tenant_id, link.portal_id, "deal", link.hubspot_id)


def _note(engine: InboundSync, order_id: str, text: str) -> None:
    note_on_order(engine.host, engine.store, engine.tenant_id, order_id, text)
