"""Linked companies and contacts follow HubSpot (their webhooks): a mixin of
:class:`~._inbound.InboundSync`, which gives it the engine's parts and its field-by-field
reconciliation, so a record's conflicts are decided and audited as an order's are."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._inbound_records import EngineSide, Outcome
from ._job_kinds import host_event_job
from ._linking import split_company_fields, update_linked_company
from .conflicts import to_json
from .errors import HostRecordError, MappingError, StrategyError
from .host import UserType
from .store import LogLevel

if TYPE_CHECKING:
    from ._field_sync import Reconciled
    from .client import HubSpotObject
    from .store import Link

__all__ = ["LinkedRecordUpdates"]


class LinkedRecordUpdates(EngineSide):
    """:meth:`update_linked`, on the engine's parts."""

    if TYPE_CHECKING:  # what else InboundSync gives the mixin
        def _reconcile(self, object_type: str, record: str, fields: Mapping[str, object], current: object,
                       link: Link, hubspot_changed_at: datetime | None, host_changed_at: datetime | None,
                       host_fields: frozenset[str] | None = None, own: Sequence[str] = ()) -> Reconciled:
            ...

        def _audit(self, done: Reconciled, link: Link, object_type: str, host_id: str) -> None:
            ...

    def update_linked(self, object_type: str, hubspot_ids: Sequence[str]) -> list[Outcome]:
        """Apply HubSpot's current values to linked host companies or contacts (webhooks).

        Unlinked records are left alone: companies and contacts are created only when a deal
        that becomes an order needs them.
        """
        host_type = {"companies": "company", "contacts": "contact"}[object_type]
        links = self.store.get_links_by_hubspot(self.tenant_id, self.portal_id, host_type, hubspot_ids)
        if not links:
            return [Outcome(i, "skipped", f"{host_type} is not linked to a host record") for i in hubspot_ids]
        try:
            # Read and applied under the claims: a worker that read an older version is done.
            links = self._linker.claim_links(host_type, links, wait=True)
            return self._update_linked_records(object_type, host_type, hubspot_ids, links)
        finally:
            self._linker.release_claims()

    def _update_linked_records(self, object_type: str, host_type: str, hubspot_ids: Sequence[str],
                               links: Mapping[str, Link]) -> list[Outcome]:
        if object_type == "companies":
            records: dict[str, HubSpotObject] = {
                c.id: c for c in self.client.read_companies(sorted(links), self.mapping.company_properties)}
        else:
            records = {c.id: c for c in self.client.read_contacts(sorted(links), self.mapping.contact_properties)}
        outcomes = []
        for hubspot_id in hubspot_ids:
            link, record = links.get(hubspot_id), records.get(hubspot_id)
            if link is None or record is None:
                outcomes.append(Outcome(hubspot_id, "skipped", f"{host_type} is not linked or no longer in HubSpot"))
                continue
            try:
                outcomes.append(self._update_linked_record(host_type, record, link))
            except (MappingError, HostRecordError) as exc:
                outcomes.append(self._failed_record(host_type, hubspot_id, exc))
        return outcomes

    def _update_linked_record(self, host_type: str, record: HubSpotObject, link: Link) -> Outcome:
        kept: dict[str, Any] = {}
        if host_type == "company":
            current: Any = self.host.get_company(link.host_id)
            fields, kept = split_company_fields(
                self.mapping.company_fields(record),  # type: ignore[arg-type]  # a Company
                self.host.capabilities().company_fields)
        else:
            current = self.host.get_contact(link.host_id)
            if current is not None and current.user_type is not UserType.PORTAL:
                return Outcome(record.id, "skipped",
                               f"contact {link.host_id} is an internal user; HubSpot does not edit it", current.id)
            fields = dict(self.mapping.contact_fields(record))  # type: ignore[arg-type]  # a Contact
        if current is None:
            return Outcome(record.id, "skipped", f"linked {host_type} {link.host_id} no longer exists in the host")
        # The host keeps no modification time for users: a contact's is unknown (newest_wins
        # then gives HubSpot the field).
        done = self._reconcile(host_type, f"{host_type}:{record.id}", fields, current, link, record.updated_at,
                               current.updated_at if host_type == "company" else None)
        changes, synced, held, host_wins = done.changes, done.synced, done.held, done.host_wins
        # Values the host has no field for are HubSpot's alone: no conflict, the plugin keeps them.
        synced.update({k: to_json(v) for k, v in kept.items()})
        if changes and host_type == "company":
            current = update_linked_company(self.host, self.store, link, changes)
        elif changes:
            self.host.update_contact(current.id, changes)
        self._audit(done, link, host_type, current.id)
        if synced != link.synced:
            self.store.update_link_synced(link.id, synced)
        if host_wins and host_type == "company":
            # The host's value won: the company push carries it (if directions.companies sends
            # companies to HubSpot), as the host's own company edits are pushed.
            kind, payload, dedupe = host_event_job("company", current.id, "saved", {"changed_fields": host_wins})
            self.store.enqueue(self.tenant_id, kind, payload, dedupe_key=dedupe)
        elif host_wins:
            self.store.log(self.tenant_id, LogLevel.INFO, "inbound.contact",
                           f"contact {record.id}: the host kept {host_wins}; contacts are not written to "
                           "HubSpot, so HubSpot keeps its own value", record=f"contact:{record.id}")
        if not changes:
            return Outcome(record.id, "unchanged", "mapped fields already match"
                           + (f"; held for review: {held}" if held else ""), current.id)
        return Outcome(record.id, "updated", f"updated {sorted(changes)}", current.id, tuple(sorted(changes)))

    def _failed_record(self, host_type: str, hubspot_id: str, exc: MappingError | HostRecordError) -> Outcome:
        what = str(exc) if isinstance(exc, StrategyError) else f"value {exc.field}={exc.value!r} cannot be used: {exc}"
        message = f"{host_type} {hubspot_id}: {what}. It is applied when it changes again in HubSpot."
        self.store.log(self.tenant_id, LogLevel.ERROR, f"inbound.{host_type}", message,
                       record=f"{host_type}:{hubspot_id}")
        return Outcome(hubspot_id, "failed", message)
