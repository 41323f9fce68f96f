"""Manual conflict resolution: a person's decision on a held conflict, applied to both sides.

A conflict the ``manual`` strategy held (see :mod:`.conflicts`) stays open in the audit trail
until an admin resolves it with HubSpot's value, Ambac Tracker's, or a typed one.
:class:`ConflictResolver` writes the decision to the host record and to HubSpot (the deal's
property or stage, or the company's or contact's mapped properties), makes it the link's last
synced value, and closes the conflict with who decided. See ``docs/conflicts.md``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import attrs

from ._deal_properties import (
    DATETIME_PROPERTIES,
    deal_property_for_field,
    hubspot_value,
    missing_stage,
    parse_field_value,
    record_properties,
)
from ._field_sync import without_held
from ._linking import update_linked_company
from .conflicts import to_json
from .errors import ConfigError, HubSpotApiError
from .host import OrderStatus
from .mapping import DealContext
from .store import CLAIM_WAIT, ClaimTimeoutError

if TYPE_CHECKING:
    from ._engine_parts import EngineParts, PushOptions
    from .store import ConflictRecord

__all__ = ["ConflictResolver", "Writer"]

log = logging.getLogger(__name__)

DECIDING = timedelta(minutes=5)
"""How long one person's resolution of a conflict holds it: longer than HubSpot's retries."""
RECORD_WAIT = CLAIM_WAIT
"""How long a resolution waits for a sync applying the conflict's record (holding its claim)."""

Writer = Callable[[str, Mapping[str, Mapping[str, str]]], dict[str, str]]
"""Batch-update HubSpot objects of one type (``deals``, ``companies``, ``contacts``) and remember
what was written; return errors by object id. The outbound push's write."""


@attrs.frozen
class ConflictResolver:
    """Resolves one tenant's open conflicts by a person's choice."""

    parts: EngineParts
    options: PushOptions
    # The push's own write and pipelines: a decided value is remembered like any pushed one
    # (so its webhook echo is recognised), and the stages are read once per push.
    write: Writer
    pipeline_stages: Callable[[], Mapping[str, set[str]]]

    def resolve(self, conflict_id: int, choice: str, *, value: str | None = None,
                decided_by: str | None = None) -> ConflictRecord:
        """Resolve an open order conflict with ``hubspot``, ``ambac`` or a typed ``value``.

        The decision is applied to both sides (the host's field and the deal's property), the
        link's last synced value becomes the decided one, and the audit trail records who
        decided what, and when.
        """
        choice = choice.strip().lower()
        if choice not in ("hubspot", "ambac", "value") or (choice == "value") == (value is None):
            raise ConfigError("Resolve with 'hubspot', 'ambac', or 'value' together with the value to set.")
        # One decision at a time: two people resolving it at once must not both write (and the
        # audit trail keep the one whose values were overwritten). The claim outlasts HubSpot's
        # retries; a crashed holder's expires.
        store, tenant_id, key = self.parts.store, self.parts.tenant_id, f"conflict:{conflict_id}"
        holder = f"{os.getpid()}:{uuid.uuid4().hex}"
        if not store.take_claim(tenant_id, key, holder, DECIDING):
            raise ConfigError(f"Conflict {conflict_id} is being decided by someone else right now; "
                              "look again in a moment.")
        try:
            record = self._open_conflict(conflict_id)
            # The record's claim, as a sync applying it takes (it then retries the record): no
            # sync closes the conflict as settled, nor writes the link, while the decision is
            # written. One that settled it first has closed it: read again under the claim. The
            # key is the link's: a merge in HubSpot moves it to the surviving record.
            link = store.get_link_by_host(tenant_id, record.object_type, record.host_id)
            kind, hubspot_id = (link.object_type, link.hubspot_id) if link else (record.hubspot_type, record.hubspot_id)
            try:  # (the decision takes no claim of its own: a timeout is the hold's)
                with store.hold_claim(tenant_id, f"{kind}:{hubspot_id}", ttl=DECIDING, wait=RECORD_WAIT):
                    return self._resolve(self._open_conflict(conflict_id), choice, value, decided_by)
            except ClaimTimeoutError as exc:
                raise ConfigError(f"HubSpot {kind} {hubspot_id} of conflict {conflict_id} is being synced "
                                  "right now; nothing was changed. Try again in a moment.") from exc
        finally:
            store.release_claim(tenant_id, key, holder)

    def _open_conflict(self, conflict_id: int) -> ConflictRecord:
        record = self.parts.store.get_conflict(self.parts.tenant_id, conflict_id)
        if record is None:
            raise ConfigError(f"Tenant {self.parts.tenant_id} has no conflict {conflict_id}; list the "
                              "open ones with `ambac-hubspot conflicts list`.")
        if not record.is_open:
            raise ConfigError(f"Conflict {conflict_id} was decided already"
                              + (f" by {record.decided_by}" if record.decided_by else "")
                              + (f" at {record.decided_at:%Y-%m-%d %H:%M} UTC" if record.decided_at else "")
                              + ": nothing was changed.")
        return record

    def _resolve(self, record: ConflictRecord, choice: str, value: str | None,
                 decided_by: str | None) -> ConflictRecord:
        conflict_id = record.id
        if record.object_type in ("company", "contact"):
            return self._resolve_record_conflict(record, choice, value, decided_by)
        order = self.parts.host.get_order(record.host_id)
        link = self.parts.store.get_link_by_host(self.parts.tenant_id, "order", record.host_id)
        if order is None or link is None:
            raise ConfigError(f"Order {record.host_id} of conflict {conflict_id} is gone or unlinked.")
        field = record.field
        kept = field in self.parts.host.capabilities().order_fields
        if not kept and choice == "ambac":
            # A conflict recorded before the host said it lacks the field: only HubSpot has one.
            raise ConfigError(f"This host's orders have no field {field!r}; resolve with 'hubspot' or a value "
                              "(the plugin keeps it in its own records).")
        if choice == "hubspot":
            decided = self._hubspot_field_value(link.hubspot_id, field)
        elif choice == "ambac":
            decided = getattr(order, field)
        else:
            assert value is not None  # checked above
            decided = parse_field_value(field, value)
        before = getattr(order, field)
        undo = None
        if kept and decided != before:
            self.parts.host.update_order(order.id, {field: decided})
            undo = functools.partial(self.parts.host.update_order, order.id, {field: before})
        synced_value = decided
        with _undone_on_failure(undo, f"order {order.id}'s {field}"):
            if choice != "hubspot" and not self._write_field(link.hubspot_id, field, decided):
                # The deal has no property for this field (or no stage for the status): HubSpot
                # keeps its value, so remember that one, or the next sync would see a HubSpot
                # change and silently undo the decision.
                synced_value = self._hubspot_field_value(link.hubspot_id, field)
        self.parts.store.update_link_synced(link.id, {**without_held(link.synced, field), field: to_json(synced_value)})
        return self.parts.store.close_conflict(self.parts.tenant_id, conflict_id, resolution=choice,
                                         resolved_value=to_json(decided),
                                         decided_by=decided_by or self._current_user())

    def _resolve_record_conflict(self, record: ConflictRecord, choice: str, value: str | None,
                                 decided_by: str | None) -> ConflictRecord:
        """Resolve a company or contact conflict on both sides (the mapping's properties)."""
        kind, field = record.object_type, record.field
        host, mapping = self.parts.host, self.parts.mapping
        current: Any = (host.get_company if kind == "company" else host.get_contact)(record.host_id)
        link = self.parts.store.get_link_by_host(self.parts.tenant_id, kind, record.host_id)
        if current is None or link is None:
            raise ConfigError(f"The {kind} {record.host_id} of conflict {record.id} is gone or unlinked.")
        if kind == "company" and field not in host.capabilities().company_fields:
            # Recorded before the host said it lacks the field: the plugin keeps HubSpot's value.
            raise ConfigError(f"This host's companies have no {field}; the plugin keeps HubSpot's value "
                              "in its own records, so there is nothing to decide.")
        if choice == "hubspot":
            read = self.parts.client.read_companies if kind == "company" else self.parts.client.read_contacts
            props = mapping.company_properties if kind == "company" else mapping.contact_properties
            found = next(iter(read([link.hubspot_id], props)), None)
            if found is None:
                raise ConfigError(f"HubSpot has no {kind} {link.hubspot_id} any more; resolve with 'ambac' or a value.")
            mapped = (self.parts.mapping.company_fields(found) if kind == "company"  # type: ignore[arg-type]  # read_companies gives companies
                      else self.parts.mapping.contact_fields(found))  # type: ignore[arg-type]  # read_contacts gives contacts
            if field not in mapped:
                raise ConfigError(f"The mapping no longer maps {field!r}; resolve with 'ambac' or a value.")
            decided: object = mapped[field]
        elif choice == "ambac":
            decided = getattr(current, field)
        else:
            if field == "address":
                raise ConfigError("An address is resolved with 'hubspot' or 'ambac', not a typed value.")
            assert value is not None  # checked by the caller
            decided = value.strip()
        before, undo = getattr(current, field), None
        if to_json(decided) != to_json(before):
            update: Callable[[Mapping[str, object]], Any] = (
                functools.partial(update_linked_company, host, self.parts.store, link) if kind == "company"
                else functools.partial(host.update_contact, record.host_id))
            current = update({field: decided})
            undo = functools.partial(update, {field: before})
        if choice != "hubspot":
            props_out = record_properties(self.parts.mapping, kind, current, [field])
            with _undone_on_failure(undo, f"{kind} {record.host_id}'s {field}"):
                failures = self.write("companies" if kind == "company" else "contacts", {link.hubspot_id: props_out})
                if failures:
                    raise HubSpotApiError(f"Writing {sorted(props_out)} to {kind} {link.hubspot_id} failed: "
                                          f"{next(iter(failures.values()))}. The conflict stays open; try again.")
        self.parts.store.update_link_synced(link.id, {**without_held(link.synced, field), field: to_json(decided)})
        return self.parts.store.close_conflict(self.parts.tenant_id, record.id, resolution=choice,
                                         resolved_value=to_json(decided),
                                         decided_by=decided_by or self._current_user())

    def _hubspot_field_value(self, deal_id: str, field: str) -> object:
        """The value the mapping takes from the deal for ``field`` now."""
        deal = self.parts.client.get_deal(deal_id, self.parts.mapping.deal_properties)
        if deal is None:
            raise ConfigError(f"HubSpot has no deal {deal_id} any more; resolve with 'ambac' or a value.")
        stage = deal.properties.get("dealstage") or ""
        context = DealContext(portal_id=self.parts.portal_id, deal=deal, company=None, contacts=(),
                              stage_status=self.options.stage_status_map.get(stage),
                              timezone=ZoneInfo(self.options.portal_timezone))
        fields = self.parts.mapping.order_fields(context)
        if field not in fields:
            raise ConfigError(f"The mapping no longer maps {field!r} from the deal; resolve with 'ambac' or a value.")
        return fields[field]

    def _write_field(self, deal_id: str, field: str, value: object) -> bool:
        """Write one decided field to the deal; return False when no deal property carries it."""
        if field == "order_status":
            props = self._stage_for(deal_id, value)
        else:
            prop = deal_property_for_field(self.parts.mapping, field)
            props = {} if prop is None else {
                prop: hubspot_value(value, datetime_property=prop in DATETIME_PROPERTIES)}
        if not props:
            return False  # the deal has no property for this field: the host side is all there is
        failures = self.write("deals", {deal_id: props})
        if failures:
            raise HubSpotApiError(f"Writing {sorted(props)} to deal {deal_id} failed: "
                                  f"{next(iter(failures.values()))}. The conflict stays open; try again.")
        return True

    def _stage_for(self, deal_id: str, status: object) -> dict[str, str]:
        if not self.options.status_stage_map or not isinstance(status, OrderStatus):
            return {}
        deal = self.parts.client.get_deal(deal_id, ["pipeline"])
        pipeline = (deal.properties.get("pipeline") if deal else None) or "default"
        stage = self.options.status_stage_map.get(pipeline, {}).get(status)
        if stage is None:
            return {}
        # Only the stage this decision needs: another stale one of the map must not block it.
        problem = missing_stage(self.pipeline_stages(), pipeline, status, stage)
        if problem is not None:
            raise ConfigError(f"{problem}, then resolve the conflict again. Nothing was changed.")
        return {"dealstage": stage}

    def _current_user(self) -> str:
        user = self.parts.host.current_user()
        return f"user:{user.id}:{user.email}" if user is not None else "unknown"


@contextlib.contextmanager
def _undone_on_failure(undo: Callable[[], object] | None, what: str) -> Iterator[None]:
    """Run the block; should it raise (HubSpot refused the decision), first put the host's
    value back with ``undo``: neither side is changed, and the conflict stays open."""
    try:
        yield
    except BaseException:
        if undo is not None:
            try:
                undo()
            except Exception as exc:  # the block's error is the one to raise; this one is logged
                log.error("could not put back %s after a failed resolution (%s): the host keeps the "
                          "decided value while the conflict stays open", what, type(exc).__name__)
        raise
