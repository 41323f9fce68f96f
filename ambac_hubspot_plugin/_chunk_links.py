"""A chunk's links, and what follows them: a mixin of :class:`~._inbound.InboundSync`.

At a chunk's end its queued links are written in one transaction, then its order pushes,
retries and log lines, each in one transaction; listeners are told after (the engine's
``_release_then_tell``), and notes on orders go last, never failing the chunk. A deal whose
link another writer made first is said for what it is (:meth:`ChunkLinks._lost_deal_links`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._inbound_records import EngineSide, Outcome
from ._job_kinds import PUSH_MAX_ATTEMPTS, order_state_job
from ._merges import note_on_order
from .store import LogLevel

if TYPE_CHECKING:
    from ._linking import PendingLink
    from .events import OrderCreated, SyncStepFailed

__all__ = ["ChunkLinks"]

log = logging.getLogger(__name__)


class ChunkLinks(EngineSide):
    """:meth:`_flush_links`, on the engine's parts and its chunk's queues."""

    if TYPE_CHECKING:  # what else InboundSync gives the mixin: the chunk's queues
        _retries: list[tuple[str, dict[str, Any], str | None]]
        _failed_steps: list[SyncStepFailed]
        _told: list[OrderCreated | SyncStepFailed]
        _notes: list[tuple[str, str]]

    def _lost_deal_links(self, items: Sequence[PendingLink], outcomes: list[Outcome], where: Mapping[str, int]) -> None:
        """Deals whose link another writer made first: the same order (its external id), or,
        when a merge webhook moved a merged-away deal's order to the deal meanwhile (a new deal
        without merged ids takes no claim), another one: then both orders exist, and the log
        and the new order say to archive it."""
        if not items:
            return
        current = self.store.get_links_by_hubspot(self.tenant_id, self.portal_id, "deal",
                                                  [item.hubspot_id for item in items])
        for item in items:
            i = where.get(item.hubspot_id)
            link = current.get(item.hubspot_id)
            if link is not None and link.host_id != item.host_id:
                message = (f"deal {item.hubspot_id}: order {item.host_id} was made while the deal took over order "
                           f"{link.host_id} of a deal HubSpot merged into it; both orders exist and only "
                           f"{link.host_id} follows the deal. Archive order {item.host_id}.")
                # Written at once, not with the chunk's lines: should a later write fail, a rerun
                # finds the deal linked and could not say it again.
                self.store.log(self.tenant_id, LogLevel.WARNING, "inbound.deal", message,
                               record=f"deal:{item.hubspot_id}")
                self._notes.append((item.host_id, message))
                if i is not None:  # made now ("created"), or by an earlier run ("unchanged")
                    outcomes[i] = Outcome(item.hubspot_id, outcomes[i].action, message, item.host_id)
            elif i is not None and outcomes[i].action == "created":
                outcomes[i] = Outcome(outcomes[i].deal_id, "unchanged",
                                      "another worker created and linked this order first", outcomes[i].order_id)

    def _flush_links(self, outcomes: list[Outcome]) -> None:
        """Write the chunk's queued links, then its jobs and log lines, each in one transaction;
        a deal whose link another writer made first is 'unchanged'."""
        pushes: list[tuple[str, dict[str, Any], str | None]] = []
        created: list[OrderCreated] = []
        unlinked: dict[str, list[PendingLink]] = {}  # object type -> records used without a link
        where = {outcome.deal_id: i for i, outcome in enumerate(outcomes)}
        for item, link in self._linker.write_pending():
            if link is not None:
                if item.created is not None:
                    # The deal learns its order's number, status and link now, not at the
                    # order's first edit. A crash before the enqueue: reconciliation pushes it.
                    pushes.append(order_state_job(item.host_id))
                    created.append(item.created)
            else:
                unlinked.setdefault(item.object_type, []).append(item)
        self._lost_deal_links(unlinked.pop("deal", []), outcomes, where)
        for object_type, items in unlinked.items():
            # Linked meanwhile by the other writer: nothing to say. Else a duplicate in HubSpot.
            linked = self.store.get_links_by_hubspot(self.tenant_id, self.portal_id, object_type,
                                                     [item.hubspot_id for item in items])
            for item in items:
                if item.hubspot_id not in linked:
                    self._linker.log(
                        LogLevel.INFO, f"inbound.{object_type}",
                        f"HubSpot {object_type} {item.hubspot_id} matches host {item.host_type} {item.host_id}, "
                        f"which is already linked to another HubSpot {object_type} (a duplicate in HubSpot?); "
                        "it is used without a link. Merge the duplicates in HubSpot.",
                        f"{object_type}:{item.hubspot_id}")
        self.store.enqueue_many(self.tenant_id, pushes, max_attempts=PUSH_MAX_ATTEMPTS)
        # Due at once; if one fails again the queue spaces its attempts out (backoff).
        retries, self._retries = self._retries, []
        self.store.enqueue_many(self.tenant_id, retries)
        self._linker.write_log()
        failed, self._failed_steps = self._failed_steps, []
        self._told = [*created, *failed]  # told after the log lines and jobs they tell of are stored
        notes, self._notes = self._notes, []
        for order_id, text in notes:  # last, and never failing the chunk: the log says it already
            try:
                note_on_order(self.host, self.store, self.tenant_id, order_id, text)
            except Exception as exc:  # the host is down: the warning above stands
                log.warning("could not add a note to order %s: %s", order_id, exc)
