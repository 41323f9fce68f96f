"""Orders made on demand from one deal, after a person reviewed them (the deal review page,
the admin API and the CRM card's button): a mixin of :class:`~._inbound.InboundSync`, which
gives it the engine's parts, so a reviewed order is made exactly as a synced one is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._inbound_records import EngineSide, Outcome, Preview, checked_changes, order_external_id, version_of
from ._merges import adopt_merged_deals
from .errors import ConfigError, DealChangedError, DealNotFoundError
from .store import ClaimTimeoutError

if TYPE_CHECKING:
    from ._inbound_records import Triggers
    from ._linking import Chunk
    from .client import Deal
    from .host import Order, OrderDraft

__all__ = ["DealReview"]


class DealReview(EngineSide):
    """:meth:`preview` and :meth:`create_from_deal`, on the engine's parts."""

    if TYPE_CHECKING:  # what else InboundSync gives the mixin
        triggers: Triggers
        _order_fields: frozenset[str]

        def _draft(self, deal: Deal, chunk: Chunk, dry_run: bool) -> tuple[OrderDraft, dict[str, Any], list[str]]:
            ...

        def _adopt(self, deal: Deal, order: Order, fields: Mapping[str, Any], trigger: str) -> Outcome:
            ...

        def _release_then_tell(self) -> None:
            ...

        def _flush_links(self, outcomes: list[Outcome]) -> None:
            ...

    def preview(self, deal_id: str) -> Preview:
        """Return the order a deal would become, with warnings for the reviewer; writes nothing."""
        deal = self.client.get_deal(deal_id, self.mapping.deal_properties)
        if deal is None:
            raise DealNotFoundError(deal_id)
        warnings: list[str] = []
        link = self.store.get_link_by_hubspot(self.tenant_id, self.portal_id, "deal", deal_id)
        existing = self.host.get_order(link.host_id) if link else None
        if existing is None:
            existing = self.host.find_order_by_external_id(order_external_id(self.portal_id, deal_id))
        if existing is not None:
            warnings.append(f"this deal already has order {existing.order_number}; creating returns it")
        if not self.triggers.is_trigger(deal):
            warnings.append("the deal is not in a trigger stage; it would not become an order on its own")
        chunk = self._linker.load_related([deal], dry_run=True)
        draft, fields, notes = self._draft(deal, chunk, dry_run=True)
        if draft.company_id is None and deal.id not in chunk.company_of:
            warnings.append("the deal has no associated company; the order will have no customer company")
        if not chunk.contacts_of.get(deal.id):
            warnings.append("the deal has no associated contacts; the order will have no customer")
        contacts = tuple(f"{c.properties.get('email') or '(no email)'}" for c in chunk.contacts.values())
        kept_by_plugin = {k: v for k, v in fields.items() if k not in self._order_fields}
        kept = self._linker.kept_values(chunk.company_of.get(deal.id), chunk)
        return Preview(deal_id, draft, tuple(warnings), existing, notes[0] if notes else "", contacts,
                       kept_by_plugin, kept, version_of(deal, chunk))

    def create_from_deal(self, deal_id: str, changes: Mapping[str, object] | None = None,
                         reviewed: str | None = None) -> Outcome:
        """Create the order of one deal with the reviewer's changes; an existing order is returned.
        ``reviewed``: the preview's ``version``; a deal changed since is refused (DealChangedError)."""
        deal = self.client.get_deal(deal_id, self.mapping.deal_properties)
        if deal is None:
            raise DealNotFoundError(deal_id)
        link = self.store.get_link_by_hubspot(self.tenant_id, self.portal_id, "deal", deal_id)
        if link is not None:  # said at once, even while a worker is applying the deal
            return Outcome(deal_id, "unchanged", "the deal already has an order", link.host_id)
        checked_changes(changes or {}, self._order_fields)
        try:
            # Under the deal's claim, as a sync chunk makes orders (see InboundSync.process): a
            # worker making its order, or moving a merged deal's order to it, has finished.
            try:
                self._linker.claim("deal", [deal_id], wait=True)
            except ClaimTimeoutError as exc:
                raise ConfigError(f"HubSpot deal {deal_id} is being synced right now; nothing was created. "
                                  "Try again in a moment.") from exc
            link = self.store.get_link_by_hubspot(self.tenant_id, self.portal_id, "deal", deal_id)
            if link is None:  # a merge survivor takes the merged-away deal's order, as a sync would
                link = adopt_merged_deals(self.host, self.store, self.tenant_id, self.portal_id, [deal],
                                          dry_run=False).get(deal_id)
            if link is not None:
                return Outcome(deal_id, "unchanged", "the deal already has an order", link.host_id)
            chunk = self._linker.load_related([deal])
            if reviewed is not None and reviewed != version_of(deal, chunk):
                raise DealChangedError(deal_id)
            self._linker.claim_new_records(chunk)  # all at once, as a sync chunk does
            # One host transaction where the host groups writes: an order it refuses (a reviewer's
            # value over its limits) leaves no company or contact made for it behind.
            with self._linker.grouped_writes():
                draft, fields, _notes = self._draft(deal, chunk, dry_run=False)
                if changes:
                    draft = attrs.evolve(draft, **changes)  # type: ignore[arg-type]  # checked against ORDER_FIELDS
                order = self.host.create_order(draft)
                outcomes = [self._adopt(deal, order, fields, "manual")]
            self._flush_links(outcomes)
        finally:
            self._release_then_tell()  # the deal's claim, and those on the domain or emails it created records for
        return outcomes[0]
