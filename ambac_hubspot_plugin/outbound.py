"""Status back to HubSpot: the outbound push engine and the plugin's custom deal properties.

Host events are stored as queue jobs by the event hooks (``host.order.status_changed``,
``host.order.updated``, ``host.order.shipped``, ``host.company.saved``), and the inbound sync
queues ``outbound.fields`` when a host value won a conflict and ``outbound.order`` for each order
it creates (so a new order's number, status and link reach its deal without a host edit).
:class:`OutboundPush` turns a
batch of such jobs into as few HubSpot calls as it can:

- jobs are grouped per record, and each record's *current* state is read from the host when
  the push runs (never the state an event carried), so many changes become one update with
  the latest state, and an event queued while a push runs is pushed again afterwards;
- the updates of many deals go out as batch updates of up to 100 (HubSpot's limit);
- the deal stage moves per pipeline through ``status_stage_map`` (validated against the
  pipelines API) and a note is added per status change when ``outbound.notes_on_status_change``;
- company edits go out only when ``directions.companies`` sends companies to HubSpot;
- every value written is remembered per object and property, so :func:`is_echo` recognises the
  webhook HubSpot sends back for our own write.

Failures raise nothing out of :meth:`OutboundPush.push`: it returns one error (or None) per
job, and the job queue retries the failed ones with backoff, dead-letters them after the last
attempt and replays them on request. See ``docs/outbound.md``.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import attrs

from .client import PropertyOption, PropertySpec
from .errors import ConfigError, HubSpotApiError, HubSpotError
from .host import OrderStatus

if TYPE_CHECKING:
    from .client import HubSpotClient, Pipeline
    from .host import HostServices, Order
    from .mapping import MappingStrategy
    from .settings import Settings
    from .store import ConflictRecord, Job, SqlStateStore

__all__ = [
    "DEAL_PROPERTIES",
    "FIELDS_KIND",
    "HOST_KINDS",
    "JOB_KINDS",
    "ORDER_KIND",
    "PROPERTY_GROUP",
    "PUSH_MAX_ATTEMPTS",
    "OutboundPush",
    "OutboundPushError",
    "PropertyMissingError",
    "deal_property_for_field",
    "ensure_hubspot_properties",
    "handle_outbound_job",
    "host_event_job",
    "hubspot_value",
    "is_echo",
    "order_state_job",
    "parse_field_value",
    "progress_percent",
    "validate_status_stage_map",
]

log = logging.getLogger(__name__)

HOST_KINDS = ("host.order.status_changed", "host.order.updated", "host.order.shipped",
              "host.company.saved")
FIELDS_KIND = "outbound.fields"
ORDER_KIND = "outbound.order"
"""Push an order's current state, with no host event behind it (a new order, a missed event)."""
JOB_KINDS = (*HOST_KINDS, FIELDS_KIND, ORDER_KIND)
PUSH_MAX_ATTEMPTS = 20
"""Attempts of a push of host state: with the queue's backoff (capped at an hour) pushes
outlast a HubSpot outage of many hours before they are dead-lettered."""
PROPERTY_GROUP = "ambac_tracker"
PROPERTY_GROUP_LABEL = "Ambac Tracker"

# Progress follows the status: the host keeps no percentage of its own. Statuses that say
# nothing about progress (on hold, cancelled) leave the deal's last value alone.
_PROGRESS = {OrderStatus.RFI: 0, OrderStatus.PENDING: 10, OrderStatus.IN_PROGRESS: 50,
             OrderStatus.COMPLETED: 100}

DEAL_PROPERTIES: tuple[PropertySpec, ...] = (
    PropertySpec("ambac_order_number", "Order number", description="The Ambac Tracker order number."),
    PropertySpec("ambac_order_status", "Order status", type="enumeration", field_type="select",
                 description="The order's status in Ambac Tracker.",
                 options=tuple(PropertyOption(s.value, s.value, i) for i, s in enumerate(OrderStatus))),
    PropertySpec("ambac_progress_percent", "Order progress (%)", type="number", field_type="number",
                 description="How far the order is, from its status."),
    PropertySpec("ambac_completion_date", "Order completion date", type="date", field_type="date",
                 description="The order's estimated completion date."),
    PropertySpec("ambac_carrier", "Shipping carrier"),
    PropertySpec("ambac_tracking_number", "Tracking number"),
    PropertySpec("ambac_tracking_url", "Tracking URL"),
    PropertySpec("ambac_ship_date", "Ship date", type="date", field_type="date"),
    PropertySpec("ambac_order_link", "Order link", description="The order in Ambac Tracker."),
)
"""The custom deal properties the push writes, in the plugin's property group."""

_OUR_PROPERTIES = frozenset(spec.name for spec in DEAL_PROPERTIES)

# The default mapping's host fields and the HubSpot properties they come from (and go back to).
_DEFAULT_PROPERTIES: dict[str, dict[str, str]] = {
    "order": {"name": "dealname", "order_date": "closedate", "value": "amount",
              "currency": "deal_currency_code"},
    "company": {"name": "name", "website": "domain", "phone": "phone",
                "address.street": "address", "address.city": "city", "address.state": "state",
                "address.zip": "zip", "address.country": "country"},
    "contact": {"email": "email", "first_name": "firstname", "last_name": "lastname",
                "phone": "phone"},
}
_DATETIME_PROPERTIES = frozenset({"closedate"})

_MISSING = re.compile(r'Property \\?"([A-Za-z0-9_]+)\\?" does not exist')


class PropertyMissingError(ConfigError):
    """A property the push writes does not exist in the portal (deleted, or setup never ran)."""

    def __init__(self, property_name: str, object_type: str = "deals") -> None:
        self.property_name = property_name
        self.object_type = object_type
        super().__init__(
            f"HubSpot {object_type} property {property_name!r} does not exist in the portal. Run "
            "`ambac-hubspot setup` (or disable and enable the plugin) to create the plugin's "
            "properties, then replay the failed jobs.",
            {f"hubspot.{object_type}.{property_name}": "missing; run `ambac-hubspot setup`"},
        )


def host_event_job(record_type: str, record_id: int, event: str,
                   details: Mapping[str, Any]) -> tuple[str, dict[str, Any], str | None]:
    """The job kind, payload and dedupe key that stand for one host event.

    Events that change a record's state coalesce per record and event (the push reads the
    latest state); shipments carry data of their own and do not.
    """
    dedupe = None if event == "shipped" else f"{record_type}:{record_id}:{event}"
    payload = {"record_type": record_type, "record_id": record_id, "event": event, **details}
    return f"host.{record_type}.{event}", payload, dedupe


def order_state_job(order_id: int) -> tuple[str, dict[str, Any], str]:
    """The job kind, payload and dedupe key that push an order's current state (no event)."""
    return ORDER_KIND, {"object_type": "order", "host_id": order_id}, f"order:{order_id}:state"


def ensure_hubspot_properties(client: HubSpotClient) -> list[str]:
    """Create the property group and the custom deal properties that do not exist yet.

    Idempotent: existing ones are left as they are. Returns the names created now.
    """
    client.ensure_property_group("deals", PROPERTY_GROUP, PROPERTY_GROUP_LABEL)
    return client.ensure_properties("deals", DEAL_PROPERTIES)


def validate_status_stage_map(pipelines: Sequence[Pipeline],
                              status_stage_map: Mapping[str, Mapping[OrderStatus, str]]) -> None:
    """Check every pipeline and stage of ``status_stage_map`` exists; ConfigError lists choices."""
    stages = {p.id: {s.id for s in p.stages} for p in pipelines}
    problems: list[tuple[str, str]] = []
    for pipeline, by_status in status_stage_map.items():
        if pipeline not in stages:
            problems.append((f"status_stage_map.{pipeline}",
                             f"no such pipeline; valid pipeline ids: {sorted(stages)}"))
            continue
        for status, stage in by_status.items():
            if stage not in stages[pipeline]:
                problems.append((f"status_stage_map.{pipeline}.{OrderStatus(status).value}",
                                 f"unknown stage id {stage!r}; valid stage ids of this pipeline: "
                                 f"{sorted(stages[pipeline])}"))
    if problems:
        raise ConfigError.from_problems(problems)


def progress_percent(status: OrderStatus) -> int | None:
    """The progress a status stands for, or None when the status says nothing about it."""
    return _PROGRESS.get(status)


def hubspot_value(value: object, *, datetime_property: bool = False) -> str:
    """A host value as HubSpot property text (dates as ``YYYY-MM-DD``, or midnight UTC for
    datetime properties such as ``closedate``; empty clears)."""
    if value is None:
        return ""
    if isinstance(value, OrderStatus):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00.000Z" if datetime_property else value.isoformat()
    if isinstance(value, Decimal):
        return str(value.normalize()) if value == value.to_integral_value() else str(value)
    return str(value)


def deal_property_for_field(mapping: MappingStrategy, field: str) -> str | None:
    """The deal property a mapped order field comes from (None: not mapped from a property).

    Configurable mappings name their sources; a strategy may also say it itself with a
    ``hubspot_property_for(field)`` method.
    """
    own = getattr(mapping, "hubspot_property_for", None)
    if callable(own):
        result = own(field)
        return None if result is None else str(result)
    return _property_for(mapping, "order", field)


def _property_for(mapping: MappingStrategy, table: str, field: str) -> str | None:
    """The HubSpot property a host field of ``table`` (``order``, ``company``, ``contact``;
    ``address.city`` for a part of a company's address) is read from, so it is written back
    there; None when it is not read from a property (a constant, or removed)."""
    # ConfigurableMapping keeps its rules privately; reading them keeps the mapping port small.
    for rule in getattr(mapping, "_rules", {}).get(table, ()):
        if rule.target == field:
            return str(rule.source) if rule.source else None
    removed = getattr(mapping, "_removed", {}).get(table, set())
    if field in removed or field.partition(".")[0] in removed:
        return None
    return _DEFAULT_PROPERTIES[table].get(field)


def record_properties(mapping: MappingStrategy, kind: str, record: Any,
                      fields: Iterable[str]) -> dict[str, str]:
    """The HubSpot properties that carry ``fields`` of a host company or contact (``kind``),
    named as ``mapping`` reads them, with the record's values as text."""
    props: dict[str, str] = {}
    for field in fields:
        if kind == "company" and field == "address":
            from .mapping import ADDRESS_FIELDS

            parts = [(f"address.{part}", getattr(record.address, part)) for part in ADDRESS_FIELDS]
        else:
            parts = [(field, getattr(record, field))]
        for name, value in parts:
            prop = _property_for(mapping, kind, name)
            if prop is not None:
                props[prop] = "" if value is None else str(value)
    return props


# ---- echoes ---------------------------------------------------------------------------------


def _object_type(name: str) -> str:
    """``deals``/``deal``/``0-3`` -> ``deal``; ``companies``/``company``/``0-2`` -> ``company``."""
    name = name.lower()
    return {"deals": "deal", "0-3": "deal", "companies": "company", "0-2": "company",
            "contacts": "contact", "0-1": "contact"}.get(name, name)


def _normal(value: str | None) -> str:
    """One text per meaning: numbers, dates and instants compare by value, not spelling."""
    text = (value or "").strip()
    if not text:
        return ""
    if text.isdigit() and len(text) >= 12:  # epoch milliseconds, as webhooks send datetimes
        return f"ms:{int(text)}"
    try:
        if len(text) == 10 and text[4] == "-":
            moment = datetime.fromisoformat(text + "T00:00:00+00:00")
            return f"ms:{int(moment.timestamp() * 1000)}"
        if "T" in text and text[:4].isdigit():
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is not None:
                return f"ms:{int(moment.timestamp() * 1000)}"
    except ValueError:
        pass
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    return f"n:{number.normalize()}" if number.is_finite() else text


ECHO_WINDOW = (timedelta(minutes=-2), timedelta(minutes=15))
"""An echo happens right after our write: a change at another time is a person's, even to the
same value (a user setting the field back to what we wrote is a real edit). The early side
allows for clock skew between HubSpot and this host."""


def is_echo(store: SqlStateStore, tenant_id: int, object_type: str, object_id: str,
            property_name: str, property_value: str | None, occurred_at: datetime | None = None) -> bool:
    """Whether this property change is our own write coming back: the value we last wrote,
    changed (when ``occurred_at`` is known) within :data:`ECHO_WINDOW` of that write."""
    pushed = store.pushed(tenant_id, _object_type(object_type), str(object_id), property_name)
    if pushed is None or _normal(pushed[0]) != _normal(property_value):
        return False
    if occurred_at is None:
        return True
    early, late = ECHO_WINDOW
    return pushed[1] + early <= occurred_at <= pushed[1] + late


# ---- the push -------------------------------------------------------------------------------


@attrs.frozen
class _OrderWork:
    """Everything queued for one order in this push, in job order."""

    jobs: tuple[Job, ...]

    @property
    def status_jobs(self) -> list[Job]:
        return [j for j in self.jobs if j.kind == "host.order.status_changed"]

    @property
    def shipments(self) -> list[Mapping[str, Any]]:
        return [j.payload for j in self.jobs if j.kind == "host.order.shipped"]

    @property
    def conflict_fields(self) -> list[str]:
        return [str(f) for j in self.jobs if j.kind == FIELDS_KIND for f in j.payload.get("fields", ())]


Outcomes = dict[int, str | None]
"""Job id -> None (done) or the error that should make the queue retry it."""


class OutboundPush:
    """Pushes one tenant's queued host changes to HubSpot."""

    def __init__(
        self,
        *,
        tenant_id: int,
        portal_id: str,
        host: HostServices,
        store: SqlStateStore,
        client: HubSpotClient,
        mapping: MappingStrategy,
        settings: Settings,
        clock: Callable[[], datetime],
    ) -> None:
        self.tenant_id = tenant_id
        self.portal_id = portal_id
        self.host = host
        self.store = store
        self.client = client
        self.mapping = mapping
        self.settings = settings
        self.clock = clock
        self._pipelines_checked = False

    # ---- entry point ---------------------------------------------------------------------

    def push(self, jobs: Sequence[Job]) -> Outcomes:
        """Push the changes these jobs stand for; return each job's outcome."""
        outcomes: Outcomes = {}
        orders: dict[int, list[Job]] = defaultdict(list)
        companies: dict[int, list[Job]] = defaultdict(list)
        for job in sorted(jobs, key=lambda j: j.id):
            if job.kind == "host.company.saved":
                companies[int(job.payload["record_id"])].append(job)
            elif job.kind in JOB_KINDS:
                key: Any = job.payload.get("host_id", job.payload.get("record_id"))  # a JSON value; int() checks it
                orders[int(key)].append(job)
            else:
                outcomes[job.id] = f"the outbound push does not handle job kind {job.kind!r}"
        if orders:
            outcomes.update(self._push_orders(orders))
        if companies:
            outcomes.update(self._push_companies(companies))
        return outcomes

    # ---- orders --------------------------------------------------------------------------

    def _push_orders(self, by_order: Mapping[int, list[Job]]) -> Outcomes:
        outcomes: Outcomes = {}
        if self.settings.directions.orders not in ("ambac_to_hubspot", "both"):
            # Orders do not flow to HubSpot in this tenant: nothing to do, nothing to keep.
            return {j.id: None for jobs in by_order.values() for j in jobs}
        links = self.store.get_links_by_host(self.tenant_id, "order", list(by_order))
        work: dict[str, tuple[Order, _OrderWork]] = {}
        for order_id, jobs in by_order.items():
            link = links.get(order_id)
            order = self.host.get_order(order_id) if link is not None else None
            if link is None or order is None:
                # An order without a deal (made in the host) or gone: nothing to push.
                outcomes.update({j.id: None for j in jobs})
                continue
            work[link.hubspot_id] = (order, _OrderWork(tuple(jobs)))
        if not work:
            return outcomes
        try:
            updates = self._deal_updates(work)
        except (HubSpotError, ConfigError) as exc:
            return outcomes | self._all_failed(work, exc)
        failures = self._write("deals", updates)
        for deal_id, (_order, item) in work.items():
            error = failures.get(deal_id, failures.get("*"))
            outcomes.update({j.id: error for j in item.jobs})
        if self.settings.outbound.notes_on_status_change:
            for deal_id, (order, item) in work.items():
                if deal_id in failures or "*" in failures or not item.status_jobs:
                    continue
                error = self._note(deal_id, order, item)
                if error is not None:
                    outcomes.update({j.id: error for j in item.status_jobs})
        return outcomes

    def _deal_updates(self, work: Mapping[str, tuple[Order, _OrderWork]]) -> dict[str, dict[str, str]]:
        stage_map = self.settings.status_stage_map
        needs_stage = [d for d, (_o, item) in work.items() if stage_map and item.status_jobs]
        needs_pipeline = needs_stage + [
            d for d, (_o, item) in work.items() if "order_status" in item.conflict_fields and stage_map]
        pipelines: dict[str, tuple[str, str]] = {}
        if needs_pipeline:
            self._check_pipelines()
            for deal in self.client.read_deals(list(dict.fromkeys(needs_pipeline)), ["pipeline", "dealstage"]):
                pipelines[deal.id] = (deal.properties.get("pipeline") or "default",
                                      deal.properties.get("dealstage") or "")
        updates: dict[str, dict[str, str]] = {}
        for deal_id, (order, item) in work.items():
            props = self.order_properties(order)
            for shipment in item.shipments:  # later shipments overwrite earlier ones
                props.update(_shipment_properties(shipment))
            for field in dict.fromkeys(item.conflict_fields):
                if field == "order_status":
                    continue  # carried by the stage move below
                prop = deal_property_for_field(self.mapping, field)
                if prop is not None:
                    props[prop] = hubspot_value(getattr(order, field),
                                                datetime_property=prop in _DATETIME_PROPERTIES)
            if deal_id in pipelines:
                pipeline, current_stage = pipelines[deal_id]
                stage = stage_map.get(pipeline, {}).get(order.order_status)
                if stage is not None and stage != current_stage:
                    props["dealstage"] = stage
            updates[deal_id] = props
        return updates

    def order_properties(self, order: Order) -> dict[str, str]:
        """The deal properties that carry one order's current state."""
        props = {
            "ambac_order_number": order.order_number,
            "ambac_order_status": order.order_status.value,
            "ambac_completion_date": hubspot_value(order.estimated_completion),
        }
        progress = progress_percent(order.order_status)
        if progress is not None:
            props["ambac_progress_percent"] = str(progress)
        link = self._order_link(order)
        if link is not None:
            props["ambac_order_link"] = link
        props.update(self.mapping.deal_properties_for(order))
        return props

    def unpushed(self, order: Order, pushed: Mapping[str, str]) -> list[str]:
        """The deal properties whose value for ``order`` now differs from ``pushed`` (what we
        last wrote to its deal), compared by meaning; a property never written counts."""
        return [name for name, value in self.order_properties(order).items()
                if name not in pushed or _normal(pushed[name]) != _normal(value)]

    def _order_link(self, order: Order) -> str | None:
        template = self.settings.outbound.order_url_template
        base = self.settings.public_base_url
        if template is None or ("{base_url}" in template and not base):
            return None
        return template.format(base_url=base or "", order_id=order.id, order_number=order.order_number)

    def _check_pipelines(self) -> None:
        if not self._pipelines_checked:
            validate_status_stage_map(self.client.get_pipelines(), self.settings.status_stage_map)
            self._pipelines_checked = True

    def _note(self, deal_id: str, order: Order, item: _OrderWork) -> str | None:
        # Coalesced status changes make one note: from the first previous status to now.
        previous = str(item.status_jobs[0].payload.get("previous_status") or "")
        body = (f"Ambac Tracker: order {order.order_number} status changed "
                f"from {previous or 'unknown'} to {order.order_status.value}.")
        try:
            self.client.create_note_on_deal(deal_id, body, self.clock())
        except HubSpotError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    # ---- companies -----------------------------------------------------------------------

    def _push_companies(self, by_company: Mapping[int, list[Job]]) -> Outcomes:
        done = {j.id: None for jobs in by_company.values() for j in jobs}
        if self.settings.directions.companies not in ("ambac_to_hubspot", "both"):
            return dict(done)  # companies flow HubSpot -> Ambac only (the default)
        links = self.store.get_links_by_host(self.tenant_id, "company", list(by_company))
        updates: dict[str, dict[str, str]] = {}
        jobs_of: dict[str, list[Job]] = {}
        for company_id, jobs in by_company.items():
            link = links.get(company_id)
            company = self.host.get_company(company_id) if link is not None else None
            if link is None or company is None:
                continue
            updates[link.hubspot_id] = record_properties(self.mapping, "company", company,
                                                         ("name", "website", "phone", "address"))
            jobs_of[link.hubspot_id] = jobs
        outcomes: Outcomes = dict(done)
        failures = self._write("companies", updates)
        for hubspot_id, jobs in jobs_of.items():
            error = failures.get(hubspot_id, failures.get("*"))
            outcomes.update({j.id: error for j in jobs})
        return outcomes

    # ---- writing -------------------------------------------------------------------------

    def _write(self, object_type: str, updates: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
        """Batch-update (100 per call); return errors by object id (``*``: all of them)."""
        if not updates:
            return {}
        try:
            result = self.client.update_objects(object_type, updates)
        except HubSpotApiError as exc:
            missing = _missing_property(exc)
            if missing is not None:
                error = PropertyMissingError(missing, object_type)
                self._log_error(object_type, str(error))
                return {"*": f"{type(error).__name__}: {error}"}
            return {"*": f"{type(exc).__name__}: {exc}"}
        except HubSpotError as exc:
            return {"*": f"{type(exc).__name__}: {exc}"}
        written = {obj.id for obj in result.succeeded}
        failures: dict[str, str] = {}
        for item in result.failed:
            message = f"HubSpot refused the update: {item.status} {item.category or ''} {item.message}".strip()
            if item.id is not None:
                failures[item.id] = message
            else:
                failures.update({i: message for i in updates if i not in written})
        singular = _object_type(object_type)
        self.store.remember_pushed(self.tenant_id, singular,
                                   {i: p for i, p in updates.items() if i in written})
        return failures

    def _all_failed(self, work: Mapping[str, tuple[Order, _OrderWork]], exc: Exception) -> Outcomes:
        message = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, ConfigError):
            self._log_error("deals", message)
        return {j.id: message for _o, item in work.values() for j in item.jobs}

    def _log_error(self, object_type: str, message: str) -> None:
        from .store import LogLevel

        self.store.log(self.tenant_id, LogLevel.ERROR, "outbound.push",
                       f"pushing {object_type} to HubSpot failed: {message}")


    # ---- manual resolution ---------------------------------------------------------------

    def resolve_conflict(self, conflict_id: int, choice: str, *, value: str | None = None,
                         decided_by: str | None = None) -> ConflictRecord:
        """Resolve an open order conflict with ``hubspot``, ``ambac`` or a typed ``value``.

        The decision is applied to both sides (the host's field and the deal's property), the
        link's last synced value becomes the decided one, and the audit trail records who
        decided what, and when.
        """
        from .conflicts import to_json

        record = self.store.get_conflict(self.tenant_id, conflict_id)
        if record is None or not record.is_open:
            raise ConfigError(f"Tenant {self.tenant_id} has no open conflict {conflict_id}; list the "
                              "open ones with `ambac-hubspot conflicts list`.")
        choice = choice.strip().lower()
        if choice not in ("hubspot", "ambac", "value") or (choice == "value") == (value is None):
            raise ConfigError("Resolve with 'hubspot', 'ambac', or 'value' together with the value to set.")
        if record.object_type in ("company", "contact"):
            return self._resolve_record_conflict(record, choice, value, decided_by)
        order = self.host.get_order(record.host_id)
        link = self.store.get_link_by_host(self.tenant_id, "order", record.host_id)
        if order is None or link is None:
            raise ConfigError(f"Order {record.host_id} of conflict {conflict_id} is gone or unlinked.")
        field = record.field
        if choice == "hubspot":
            decided = self._hubspot_field_value(link.hubspot_id, field)
        elif choice == "ambac":
            decided = getattr(order, field)
        else:
            assert value is not None  # checked above
            decided = parse_field_value(field, value)
        if decided != getattr(order, field):
            self.host.update_order(order.id, {field: decided})
        synced_value = decided
        if choice != "hubspot" and not self._write_field(link.hubspot_id, field, decided):
            # The deal has no property for this field (or no stage for the status): HubSpot keeps
            # its value, so remember that one, or the next sync would see a HubSpot change and
            # silently undo the decision.
            synced_value = self._hubspot_field_value(link.hubspot_id, field)
        synced = dict(link.synced)
        synced[field] = to_json(synced_value)
        self.store.update_link_synced(link.id, synced)
        return self.store.close_conflict(self.tenant_id, conflict_id, resolution=choice,
                                         resolved_value=to_json(decided),
                                         decided_by=decided_by or self._current_user())

    def _resolve_record_conflict(self, record: ConflictRecord, choice: str, value: str | None,
                                 decided_by: str | None) -> ConflictRecord:
        """Resolve a company or contact conflict on both sides (the mapping's properties)."""
        from .conflicts import to_json

        kind, field = record.object_type, record.field
        current: Any = (self.host.get_company if kind == "company" else self.host.get_contact)(record.host_id)
        link = self.store.get_link_by_host(self.tenant_id, kind, record.host_id)
        if current is None or link is None:
            raise ConfigError(f"The {kind} {record.host_id} of conflict {record.id} is gone or unlinked.")
        if choice == "hubspot":
            read = self.client.read_companies if kind == "company" else self.client.read_contacts
            props = self.mapping.company_properties if kind == "company" else self.mapping.contact_properties
            found = next(iter(read([link.hubspot_id], props)), None)
            if found is None:
                raise ConfigError(f"HubSpot has no {kind} {link.hubspot_id} any more; resolve with 'ambac' or a value.")
            mapped = (self.mapping.company_fields(found) if kind == "company"  # type: ignore[arg-type]  # read_companies gives companies
                      else self.mapping.contact_fields(found))  # type: ignore[arg-type]  # read_contacts gives contacts
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
        if to_json(decided) != to_json(getattr(current, field)):
            current = (self.host.update_company if kind == "company" else self.host.update_contact)(
                current.id, {field: decided})
        if choice != "hubspot":
            props_out = record_properties(self.mapping, kind, current, [field])
            failures = self._write("companies" if kind == "company" else "contacts", {link.hubspot_id: props_out})
            if failures:
                raise HubSpotApiError(f"Writing {sorted(props_out)} to {kind} {link.hubspot_id} failed: "
                                      f"{next(iter(failures.values()))}. The conflict stays open; try again.")
        self.store.update_link_synced(link.id, {**link.synced, field: to_json(decided)})
        return self.store.close_conflict(self.tenant_id, record.id, resolution=choice,
                                         resolved_value=to_json(decided),
                                         decided_by=decided_by or self._current_user())

    def _hubspot_field_value(self, deal_id: str, field: str) -> object:
        from zoneinfo import ZoneInfo

        from .mapping import DealContext

        deal = self.client.get_deal(deal_id, self.mapping.deal_properties)
        if deal is None:
            raise ConfigError(f"HubSpot has no deal {deal_id} any more; resolve with 'ambac' or a value.")
        stage = deal.properties.get("dealstage") or ""
        context = DealContext(portal_id=self.portal_id, deal=deal, company=None, contacts=(),
                              stage_status=self.settings.stage_status_map.get(stage),
                              timezone=ZoneInfo(self.settings.portal_timezone))
        fields = self.mapping.order_fields(context)
        if field not in fields:
            raise ConfigError(f"The mapping no longer maps {field!r} from the deal; resolve with 'ambac' or a value.")
        return fields[field]

    def _write_field(self, deal_id: str, field: str, value: object) -> bool:
        """Write one decided field to the deal; return False when no deal property carries it."""
        if field == "order_status":
            props = self._stage_for(deal_id, value)
        else:
            prop = deal_property_for_field(self.mapping, field)
            props = {} if prop is None else {
                prop: hubspot_value(value, datetime_property=prop in _DATETIME_PROPERTIES)}
        if not props:
            return False  # the deal has no property for this field: the host side is all there is
        failures = self._write("deals", {deal_id: props})
        if failures:
            raise HubSpotApiError(f"Writing {sorted(props)} to deal {deal_id} failed: "
                                  f"{next(iter(failures.values()))}. The conflict stays open; try again.")
        return True

    def _stage_for(self, deal_id: str, status: object) -> dict[str, str]:
        if not self.settings.status_stage_map or not isinstance(status, OrderStatus):
            return {}
        self._check_pipelines()
        deal = self.client.get_deal(deal_id, ["pipeline"])
        pipeline = (deal.properties.get("pipeline") if deal else None) or "default"
        stage = self.settings.status_stage_map.get(pipeline, {}).get(status)
        return {} if stage is None else {"dealstage": stage}

    def _current_user(self) -> str:
        user = self.host.current_user()
        return f"user:{user.id}:{user.email}" if user is not None else "unknown"


def parse_field_value(field: str, text: str) -> object:
    """A typed value (CLI, admin form) as the order field's type; ConfigError says what is wrong."""
    import typing

    from .host import Order

    hints = typing.get_type_hints(Order)
    if field not in hints:
        raise ConfigError(f"Orders have no field {field!r}.")
    hint = hints[field]
    text = text.strip()
    args = set(typing.get_args(hint)) or {hint}
    if text == "" and type(None) in args:
        return None
    try:
        if OrderStatus in args:
            return OrderStatus(text)
        if date in args:
            return date.fromisoformat(text)
        if Decimal in args:
            return Decimal(text)
    except (ValueError, InvalidOperation) as exc:
        raise ConfigError(f"{text!r} is not a valid value for {field} ({hint}).") from exc
    return text


def _shipment_properties(shipment: Mapping[str, Any]) -> dict[str, str]:
    return {"ambac_carrier": str(shipment.get("carrier") or ""),
            "ambac_tracking_number": str(shipment.get("tracking_number") or ""),
            "ambac_tracking_url": str(shipment.get("tracking_url") or ""),
            "ambac_ship_date": str(shipment.get("ship_date") or "")}


def _missing_property(exc: HubSpotApiError) -> str | None:
    """The name of the property a 400 says does not exist, if that is what it says."""
    if exc.status != 400:
        return None
    text = str(exc)
    match = _MISSING.search(text)
    if match:
        return match.group(1)
    if "PROPERTY_DOESNT_EXIST" in text:
        found = [name for name in sorted(_OUR_PROPERTIES) if name in text]
        return found[0] if found else "(unknown)"
    return None


class OutboundPushError(HubSpotError):
    """A push did not get through; the job queue retries it with backoff (message says why)."""


def handle_outbound_job(job: Job, *, store: SqlStateStore, worker_id: str,
                        engine_for: Callable[[int], OutboundPush], lease: timedelta,
                        max_jobs: int = 1000) -> None:
    """The job handler of every outbound kind: claim more due outbound jobs and push them all.

    ``job`` is the one the queue runner claimed (it completes or fails it from what this
    raises); the others are claimed here with the same worker id, their leases are kept fresh
    while the push runs (:func:`~.store.keep_leases`, with the runner's ``lease``), and they
    are completed or failed here one by one. Jobs are pushed in id order. A tenant's jobs
    whose lease was lost meanwhile (another worker runs them) are not pushed.
    """
    from .store import LeaseLostError, keep_leases

    jobs = [job]
    while len(jobs) < max_jobs:
        more = store.claim(worker_id, kinds=JOB_KINDS, limit=min(500, max_jobs - len(jobs)),
                           lease=lease)
        if not more:
            break
        jobs.extend(more)
    by_tenant: dict[int, list[Job]] = defaultdict(list)
    for item in jobs:
        by_tenant[item.tenant_id].append(item)
    outcomes: Outcomes = {}
    with keep_leases(store, jobs[1:], worker_id, lease) as kept:  # the runner keeps job's
        for tenant_id, claimed in by_tenant.items():
            tenant_jobs = [j for j in claimed if j.id not in kept.lost]
            if not tenant_jobs:
                continue
            try:
                engine = engine_for(tenant_id)
            except Exception as exc:  # not enabled here, bad settings: retry later, with backoff
                outcomes.update({j.id: f"{type(exc).__name__}: {exc}" for j in tenant_jobs})
                continue
            try:
                outcomes.update(engine.push(tenant_jobs))
            except Exception as exc:  # the claimed jobs retry with backoff instead of waiting for their leases
                outcomes.update({j.id: f"{type(exc).__name__}: {exc}" for j in tenant_jobs})
    for item in jobs[1:]:
        error = outcomes.get(item.id)
        try:
            if error is None:
                store.complete(item.id, worker_id)
            else:
                store.fail(item.id, worker_id, error)
        except LeaseLostError:
            log.warning("outbound job %s: lease lost before reporting back", item.id)
    error = outcomes.get(job.id)
    if error is not None:
        raise OutboundPushError(error)
