"""Deals HubSpot merged: the order of a merged-away deal follows the surviving deal.

HubSpot keeps one deal of a merge and lists the others' ids in its ``hs_merged_object_ids``.
Both ways the plugin can see a merge move the order's link: the merge webhook
(:mod:`._webhooks._apply`) and any sync that reads the surviving deal
(:func:`adopt_merged_deals`). So a merge whose webhook was lost, or that a scheduled sync reads
first, never turns the surviving deal into a second order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from .errors import HostRecordError
from .store import LogLevel

if TYPE_CHECKING:
    from .client import Deal, HubSpotObject
    from .host import HostServices
    from .store import Link, StateStore

__all__ = ["MERGED_PROPERTY", "adopt_merged_deals", "merged_ids", "move_merged", "note_on_order"]

MERGED_PROPERTY = "hs_merged_object_ids"


def merged_ids(record: HubSpotObject) -> list[str]:
    """The ids of the records HubSpot merged into ``record`` (``hs_merged_object_ids``)."""
    raw = record.properties.get(MERGED_PROPERTY) or ""
    return [part.strip() for part in raw.split(";") if part.strip() and part.strip() != record.id]


def note_on_order(host: HostServices, store: StateStore, tenant_id: str, order_id: str, text: str) -> None:
    """Add a note to the order; an order gone from the host fails nothing (it is logged)."""
    try:
        host.add_order_note(order_id, text)
    except HostRecordError as exc:
        store.log(tenant_id, LogLevel.WARNING, "webhook.note",
                  f"could not add a note to order {order_id}: {exc}", record=f"order:{order_id}")


def move_merged(host: HostServices, store: StateStore, tenant_id: str, portal_id: str, old: str,
                survivor: str, *, what: str) -> Link | None:
    """Move the link of deal ``old`` (merged away) to ``survivor``, and say so in the log
    (``what``) and on the order; the moved link, or None when ``old`` had no order or
    ``survivor`` has one already (then both orders stay, and the log says to archive one)."""
    link = store.get_link_by_hubspot(tenant_id, portal_id, "deal", old)
    if link is None:
        return None
    if store.get_link_by_hubspot(tenant_id, portal_id, "deal", survivor) is None:
        moved = store.move_link(link.id, survivor)
        message = f"deal {old} was merged into deal {survivor} in HubSpot; its order now follows deal {survivor}"
        store.log(tenant_id, LogLevel.INFO, what, message, record=f"deal:{survivor}")
        note_on_order(host, store, tenant_id, link.host_id, message)
        return moved
    message = (f"deal {old} was merged into deal {survivor}, which already has an order; "
               f"this order stays linked to the old deal id. Archive one of the two orders.")
    store.log(tenant_id, LogLevel.WARNING, what, message, record=f"deal:{old}")
    note_on_order(host, store, tenant_id, link.host_id, message)
    return None


def adopt_merged_deals(host: HostServices, store: StateStore, tenant_id: str, portal_id: str,
                       deals: Iterable[Deal], *, dry_run: bool) -> Mapping[str, Link]:
    """The links of merged-away deals that ``deals`` (not linked themselves) absorbed, moved
    to them, by surviving deal id: one store query for the chunk, and none when no deal was
    merged (the usual case). A dry run moves nothing and says which link it would take."""
    merged = {old: deal.id for deal in deals for old in merged_ids(deal)}
    if not merged:
        return {}
    found: Sequence[Link] = sorted(store.get_links_by_hubspot(tenant_id, portal_id, "deal", list(merged)).values(),
                                   key=lambda link: link.id)
    adopted: dict[str, Link] = {}
    for link in found:
        survivor = merged[link.hubspot_id]
        if dry_run:
            adopted.setdefault(survivor, link)
        elif (moved := move_merged(host, store, tenant_id, portal_id, link.hubspot_id, survivor,
                                   what="sync.merge")) is not None:
            adopted[survivor] = moved
    return adopted
