"""Status back to HubSpot: the outbound push engine and its job handler.

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
  pipelines API) and a note is added per status change when ``outbound.notes_on_status_change``,
  100 notes per batch create, never one twice (:mod:`._status_notes`);
- company edits go out only when ``directions.companies`` sends companies to HubSpot;
- every value written is remembered per object and property, so :func:`~._echo.is_echo`
  recognises the webhook HubSpot sends back for our own write.

Failures raise nothing out of :meth:`OutboundPush.push`: it returns one error (or None) per
job, and the job queue retries the failed ones with backoff, dead-letters them after the last
attempt and replays them on request. See ``docs/outbound.md``.

The custom deal properties and the formatting of host values are in :mod:`._deal_properties`,
the job kinds in :mod:`._job_kinds`, echo recognition in :mod:`._echo`, and an admin's
resolution of a held conflict in :mod:`._conflict_resolution`.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from ._batches import is_refusal, send_in_batches
from ._checks import doc
from ._conflict_resolution import ConflictResolver
from ._deal_properties import (
    DATETIME_PROPERTIES,
    DELETED_FLAG,
    SHIPMENT_MARK,
    PropertyMissingError,
    deal_property_for_field,
    hubspot_value,
    missing_property,
    missing_stage,
    progress_properties,
    record_properties,
    shipment_properties,
)
from ._echo import normal_form, singular_type
from ._field_sync import HELD_FIELDS
from ._job_kinds import FIELDS_KIND, JOB_KINDS, job_host_id, recheck_held_jobs
from ._status_notes import NoteWork, StatusNotes
from .errors import ConfigError, HubSpotApiError, HubSpotError
from .store import ClaimTimeoutError, JobState, LeaseLostError, LinkConflictError, LogLevel

if TYPE_CHECKING:
    from ._engine_parts import EngineParts, PushOptions
    from .host import Order
    from .store import ConflictRecord, Job, JobQueue, Link, SyncStore

__all__ = ["OutboundPush", "OutboundPushError", "handle_outbound_job"]

log = logging.getLogger(__name__)

VERSION_DEPTH = 20
"""How many earlier versions of a saved host company are looked through for its link: the
link follows each save, so it is one back, unless saves went unprocessed (the plugin
disabled); each step is a host and a store read, paid at every save of a company never linked."""
# The company fields a company push carries to HubSpot, when the host keeps them.
PUSHED_COMPANY_FIELDS = ("name", "website", "phone", "address")


# ---- the push -------------------------------------------------------------------------------


@attrs.frozen
class _OrderWork:
    """Everything queued for one order in this push, in job order."""

    jobs: tuple[Job, ...]

    @property
    def status_jobs(self) -> list[Job]:
        return [j for j in self.jobs if j.kind == "host.order.status_changed"]

    @property
    def stage_jobs(self) -> list[Job]:
        """The jobs that move the deal's stage: status changes, and a status the host won."""
        return [j for j in self.jobs if j.kind == "host.order.status_changed"
                or (j.kind == FIELDS_KIND and "order_status" in j.payload.get("fields", ()))]

    @property
    def shipment_jobs(self) -> list[Job]:
        """The shipments, oldest first (in the order the host recorded them)."""
        return sorted((j for j in self.jobs if j.kind == "host.order.shipped"), key=_recorded)

    @property
    def shipments(self) -> list[Mapping[str, Any]]:
        return [j.payload for j in self.shipment_jobs]

    @property
    def conflict_fields(self) -> list[str]:
        return [str(f) for j in self.jobs if j.kind == FIELDS_KIND for f in j.payload.get("fields", ())]


Outcomes = dict[int, str | None]
"""Job id -> None (done) or the error that should make the queue retry it."""


class OutboundPush:
    """Pushes one tenant's queued host changes to HubSpot."""

    def __init__(self, parts: EngineParts, options: PushOptions) -> None:
        self.parts = parts
        self.tenant_id = parts.tenant_id
        self.portal_id = parts.portal_id
        self.host = parts.host
        self.store: SyncStore = parts.store  # PushStore's ports, and the queue for a held deal's retry
        self.client = parts.client
        self.mapping = parts.mapping
        self.options = options
        self.clock = parts.clock
        self._pipeline_stages: dict[str, set[str]] | None = None  # pipeline id -> its stage ids
        # What the host keeps: progress comes from the order's milestone when it keeps them,
        # and only its fields are pushed (the others hold nothing of the host's).
        capabilities = parts.host.capabilities()
        self._milestones = capabilities.milestones
        self._order_fields = capabilities.order_fields
        self._company_fields = capabilities.company_fields

    # ---- entry point ---------------------------------------------------------------------

    def push(self, jobs: Sequence[Job]) -> Outcomes:
        """Push the changes these jobs stand for; return each job's outcome."""
        outcomes: Outcomes = {}
        orders: dict[str, list[Job]] = defaultdict(list)
        companies: dict[str, list[Job]] = defaultdict(list)
        for job in sorted(jobs, key=lambda j: j.id):
            if job.kind == "host.company.saved":
                try:
                    companies[job_host_id(job)].append(job)
                except ValueError as exc:
                    outcomes[job.id] = str(exc)
            elif job.kind in JOB_KINDS:
                try:
                    orders[job_host_id(job)].append(job)
                except ValueError as exc:
                    outcomes[job.id] = str(exc)
            else:
                outcomes[job.id] = f"the outbound push does not handle job kind {job.kind!r}"
        if orders:
            outcomes.update(self._push_orders(orders))
        if companies:
            outcomes.update(self._push_companies(companies))
        return outcomes

    # ---- orders --------------------------------------------------------------------------

    def _push_orders(self, by_order: Mapping[str, list[Job]]) -> Outcomes:
        outcomes: Outcomes = {}
        links = self.store.get_links_by_host(self.tenant_id, "order", list(by_order))
        self._recheck_held(links.values())
        if self.options.directions.orders not in ("ambac_to_hubspot", "both"):
            # Orders do not flow to HubSpot in this tenant: nothing to do, nothing to keep.
            return {j.id: None for jobs in by_order.values() for j in jobs}
        work: dict[str, tuple[Order, _OrderWork]] = {}
        for order_id, jobs in by_order.items():
            link = links.get(order_id)
            order = self.host.get_order(order_id) if link is not None and not link.synced.get(DELETED_FLAG) else None
            if link is None or order is None:
                # An order without a deal (made in the host, or its deal deleted in HubSpot: the
                # deletion is logged, and a restore links it again) or gone: nothing to push.
                outcomes.update({j.id: None for j in jobs})
                continue
            work[link.hubspot_id] = (order, _OrderWork(tuple(jobs)))
        work = self._without_older_shipments(work, outcomes)
        if not work:
            return outcomes
        try:
            updates, no_stage = self._deal_updates(work)
        except (HubSpotError, ConfigError) as exc:
            return outcomes | self._all_failed(work, exc)
        # Read before the write replaces them: which deals already show the order's status.
        before = (self.store.pushed_values_of(self.tenant_id, "deal", list(work))
                  if self.options.outbound.notes_on_status_change else {})
        failures = self._write("deals", updates)
        marks = {deal_id: {SHIPMENT_MARK: _shipment_mark(item.shipment_jobs[-1])}
                 for deal_id, (_order, item) in work.items() if item.shipment_jobs and deal_id not in failures}
        if marks:
            self.store.remember_pushed(self.tenant_id, "deal", marks)
        for deal_id, (_order, item) in work.items():
            error = failures.get(deal_id)
            outcomes.update({j.id: error for j in item.jobs})
            if error is None and deal_id in no_stage:  # the rest went out; the stage move waits
                outcomes.update({j.id: no_stage[deal_id] for j in item.stage_jobs})
        if self.options.outbound.notes_on_status_change:
            # Only deals updated now: a failed deal's jobs are retried, and their note with them.
            noted = [NoteWork(deal_id, order, tuple(item.status_jobs))
                     for deal_id, (order, item) in work.items()
                     if deal_id not in failures and item.status_jobs
                     and _noteworthy(order, item.status_jobs, before.get(deal_id, {}))]
            written = StatusNotes(self.client, self.tenant_id, self.clock).write(noted)
            outcomes.update({job_id: error for job_id, error in written.items() if error is not None})
        return outcomes

    def _recheck_held(self, links: Iterable[Link]) -> None:
        """An edit of an order or a company with a conflict held for a person may end the dispute
        (the host went back to the last synced value, or took HubSpot's): its deal or company is
        read and reconciled now (a job: it settles the conflict if so, and changes nothing if
        not), not at the record's next HubSpot change. Not for a record deleted in HubSpot, nor
        for one whose such job is dead-lettered (it failed every attempt, and a host edit would
        only fail it again: an admin replays the dead letter)."""
        items = recheck_held_jobs(link for link in links if link.portal_id == self.portal_id)
        if not items:
            return
        kinds, keys = {kind for kind, _payload, _key in items}, [key for _kind, _payload, key in items]
        dead = {(job.kind, job.dedupe_key) for job in self.store.queued(self.tenant_id, kinds, dedupe_keys=keys)
                if job.state is JobState.DEAD}
        self.store.enqueue_many(self.tenant_id, [item for item in items if (item[0], item[2]) not in dead])

    def _without_older_shipments(self, work: dict[str, tuple[Order, _OrderWork]],
                                 outcomes: Outcomes) -> dict[str, tuple[Order, _OrderWork]]:
        """``work`` without the shipment jobs older than the shipment already on their deal
        (its :data:`SHIPMENT_MARK`): a shipment carries its own data, so an older one's retry,
        after waiting out an outage, must not put its tracking number back over a newer one.
        Each such job is done (in ``outcomes``), and the log says why it wrote nothing."""
        shipping = [deal_id for deal_id, (_order, item) in work.items() if item.shipment_jobs]
        marks = self.store.pushed_values_of(self.tenant_id, "deal", shipping) if shipping else {}
        kept = dict(work)
        for deal_id, props in marks.items():
            newest = _marked(props.get(SHIPMENT_MARK))
            if newest is None:
                continue
            order, item = work[deal_id]
            older = [j for j in item.shipment_jobs if _recorded(j) < newest]
            for job in older:
                outcomes[job.id] = None
                self.store.log(self.tenant_id, LogLevel.INFO, "outbound.push",
                               f"shipment {job.payload.get('carrier') or ''} "
                               f"{job.payload.get('tracking_number') or ''} of order {order.order_number} "
                               f"(job {job.id}) not written to deal {deal_id}: a newer shipment "
                               f"(job {newest[1]}) is already there", record=f"order:{order.id}")
            rest = tuple(j for j in item.jobs if j not in older)
            if not rest:
                del kept[deal_id]
            elif older:
                kept[deal_id] = (order, _OrderWork(rest))
        return kept

    def _deal_updates(self, work: Mapping[str, tuple[Order, _OrderWork]],
                      ) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
        """Each deal's properties to write; and, by deal, why its stage cannot move (the
        status maps to a stage its pipeline lacks): that deal's other properties still go out,
        and only its stage jobs fail (retried, then replayed once the setting is fixed)."""
        stage_map = self.options.status_stage_map
        needs_stage = [d for d, (_o, item) in work.items() if stage_map and item.status_jobs]
        needs_pipeline = needs_stage + [
            d for d, (_o, item) in work.items() if "order_status" in item.conflict_fields and stage_map]
        pipelines: dict[str, tuple[str, str]] = {}
        stages: dict[str, set[str]] = {}
        if needs_pipeline:
            stages = self._stages()
            for deal in self.client.read_deals(list(dict.fromkeys(needs_pipeline)), ["pipeline", "dealstage"]):
                pipelines[deal.id] = (deal.properties.get("pipeline") or "default",
                                      deal.properties.get("dealstage") or "")
        updates: dict[str, dict[str, str]] = {}
        no_stage: dict[str, str] = {}
        unwritable: dict[str, str] = {}  # field the host won -> an order whose value stays put
        for deal_id, (order, item) in work.items():
            props = self.order_properties(order)
            for shipment in item.shipments:  # later shipments overwrite earlier ones
                props.update(shipment_properties(shipment))
            for field in dict.fromkeys(item.conflict_fields):
                if field == "order_status" or field not in self._order_fields:
                    continue  # the status is carried by the stage move below; a field the host
                    # lacks (a job queued before the upgrade) has no host value to push
                prop = deal_property_for_field(self.mapping, field)
                if prop is not None:
                    props[prop] = hubspot_value(getattr(order, field),
                                                datetime_property=prop in DATETIME_PROPERTIES)
                else:
                    unwritable.setdefault(field, order.order_number)
            if deal_id in pipelines:
                pipeline, current_stage = pipelines[deal_id]
                stage = stage_map.get(pipeline, {}).get(order.order_status)
                problem = None if stage is None else missing_stage(stages, pipeline, order.order_status, stage)
                if problem is not None:
                    no_stage[deal_id] = f"{problem}, then replay this job (the deal's other properties were written)"
                elif stage is not None and stage != current_stage:
                    props["dealstage"] = stage
            updates[deal_id] = props
        if unwritable:
            self.store.log(self.tenant_id, LogLevel.WARNING, "outbound.push",
                           f"the host's value of {sorted(unwritable)} won a conflict (order "
                           f"{next(iter(unwritable.values()))}, ...) but cannot be written to HubSpot: the "
                           f"mapping strategy {getattr(self.mapping, 'name', '?')!r} does not say which deal "
                           f"property it reads it from; give it hubspot_property_for(field) "
                           f"({doc('strategies.md')}). HubSpot keeps its value.")
        return updates, no_stage

    def _stages(self) -> dict[str, set[str]]:
        """Each pipeline's stage ids, read once per engine: once per push (``Runtime.outbound``
        builds an engine for each), so a stage added in HubSpot is there for the next retry."""
        if self._pipeline_stages is None:
            self._pipeline_stages = {p.id: {s.id for s in p.stages} for p in self.client.get_pipelines()}
        return self._pipeline_stages

    def order_properties(self, order: Order) -> dict[str, str]:
        """The deal properties that carry one order's current state."""
        props = {
            "ambac_order_number": order.order_number,
            "ambac_order_status": order.order_status.value,
            "ambac_completion_date": hubspot_value(order.estimated_completion),
        }
        props.update(progress_properties(order, milestones=self._milestones))
        link = self._order_link(order)
        if link is not None:
            props["ambac_order_link"] = link
        props.update(self.mapping.deal_properties_for(order))
        return props

    def unpushed(self, order: Order, pushed: Mapping[str, str]) -> list[str]:
        """The deal properties whose value for ``order`` now differs from ``pushed`` (what we
        last wrote to its deal), compared by meaning; a property never written counts."""
        return [name for name, value in self.order_properties(order).items()
                if name not in pushed or normal_form(pushed[name]) != normal_form(value)]

    def _order_link(self, order: Order) -> str | None:
        template = self.options.outbound.order_url_template
        base = self.options.public_base_url
        if template is None or ("{base_url}" in template and not base):
            return None
        return template.format(base_url=base or "", order_id=order.id, order_number=order.order_number)

    # ---- companies -----------------------------------------------------------------------

    def _push_companies(self, by_company: Mapping[str, list[Job]]) -> Outcomes:
        links, unresolved = self._company_links(list(by_company))
        # A company whose link could not be moved to its new version fails alone (retried).
        done = {j.id: unresolved.get(company_id) for company_id, jobs in by_company.items() for j in jobs}
        if self.options.directions.companies not in ("ambac_to_hubspot", "both"):
            self._recheck_held(links.values())
            return dict(done)  # companies flow HubSpot -> Ambac only (the default)
        updates: dict[str, dict[str, str]] = {}
        jobs_of: dict[str, list[Job]] = {}
        for company_id, jobs in by_company.items():
            link = links.get(company_id)
            company = self.host.get_company(company_id) if link is not None else None
            if link is None or company is None:
                continue
            # Only fields the host keeps: HubSpot's own values of the others are in the plugin's
            # records, and HubSpot has them already. Not a field held for a person: writing the
            # host's value would decide the dispute for the host, unasked.
            held = set(link.synced.get(HELD_FIELDS, ()))
            fields = [f for f in PUSHED_COMPANY_FIELDS if f in self._company_fields and f not in held]
            if fields:
                updates[link.hubspot_id] = record_properties(self.mapping, "company", company, fields)
                jobs_of[link.hubspot_id] = jobs
        outcomes: Outcomes = dict(done)
        failures = self._write("companies", updates)
        for hubspot_id, jobs in jobs_of.items():
            error = failures.get(hubspot_id)
            outcomes.update({j.id: error for j in jobs})
        self._recheck_held(links.values())  # after the write: the recheck reads what it wrote
        return outcomes

    def _company_links(self, company_ids: Sequence[str]) -> tuple[dict[str, Link], dict[str, str]]:
        """The links of these saved companies. A host that saves a change as a new version (a
        new id: Ambac Tracker) names the new one, while the link is still on the version linked
        before: it is found by following ``previous_id`` back (at most :data:`VERSION_DEPTH`
        versions) and re-pointed to the saved one, with its open conflicts, so the push, the
        recheck and the next sync find the company. Under the company's claim, and only from the
        version found: of two workers re-pointing one link from two saves, the one whose
        version is older finds the link moved on and leaves it there. Also returns, by company,
        why its link could not be moved (the claim held too long, the new version linked
        already): those fail alone."""
        links = self.store.get_links_by_host(self.tenant_id, "company", list(company_ids))
        unresolved: dict[str, str] = {}
        for company_id in company_ids:
            try:
                for _attempt in range(3):  # the link moved meanwhile: walk again from the saved version
                    found = self._linked_version(company_id) if company_id not in links else None
                    if found is None:
                        break
                    with self.store.hold_claim(self.tenant_id, f"company:{found.hubspot_id}"):
                        current = self.store.get_link_by_hubspot(self.tenant_id, found.portal_id, "company",
                                                                 found.hubspot_id)
                        if current is not None and current.host_id == found.host_id:
                            links[company_id] = self.store.move_link_host(current.id, company_id)
            except (ClaimTimeoutError, LinkConflictError) as exc:
                unresolved[company_id] = (f"the link of an earlier version of company {company_id} was not moved "
                                          f"to it: {type(exc).__name__}: {exc}")
        return links, unresolved

    def _linked_version(self, company_id: str) -> Link | None:
        """The link of an earlier version of this host company, if one is linked."""
        company = self.host.get_company(company_id)
        previous, seen = (company.previous_id if company is not None else None), {company_id}
        for _depth in range(VERSION_DEPTH):
            if previous is None or previous in seen:
                return None
            link = self.store.get_link_by_host(self.tenant_id, "company", previous)
            if link is not None:
                return link
            seen.add(previous)
            older = self.host.get_company(previous)
            previous = older.previous_id if older is not None else None
        return None

    # ---- writing -------------------------------------------------------------------------

    def _write(self, object_type: str, updates: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
        """Batch-update (100 per call); return errors by object id.

        A batch that fails fails its own ids only; one HubSpot refuses whole for one bad
        input is split down to it (:func:`~._batches.send_in_batches`), except for a missing
        property, which every input would hit again.
        """
        failures: dict[str, str] = {}
        written: set[str] = set()
        logged: list[str] = []

        def send(ids: Sequence[str]) -> None:
            result = self.client.update_objects(object_type, {i: updates[i] for i in ids})
            done = {obj.id for obj in result.succeeded}
            written.update(done)
            for item in result.failed:
                message = f"HubSpot refused the update: {item.status} {item.category or ''} {item.message}".strip()
                if item.id is not None:
                    failures[item.id] = message
                else:
                    failures.update({i: message for i in ids if i not in done})

        def failed(ids: Sequence[str], exc: HubSpotError) -> None:
            message = f"{type(exc).__name__}: {exc}"
            missing = missing_property(exc) if isinstance(exc, HubSpotApiError) else None
            if missing is not None:
                error = PropertyMissingError(missing, object_type)
                message = f"{type(error).__name__}: {error}"
                if not logged:  # once per push, not per batch
                    self._log_error(object_type, str(error))
                    logged.append(message)
            failures.update(dict.fromkeys(ids, message))

        def split(exc: HubSpotError) -> bool:
            return is_refusal(exc) and not (isinstance(exc, HubSpotApiError) and missing_property(exc))

        send_in_batches(list(updates), send, failed, split=split)
        singular = singular_type(object_type)
        self.store.remember_pushed(self.tenant_id, singular,
                                   {i: p for i, p in updates.items() if i in written})
        return failures

    def _all_failed(self, work: Mapping[str, tuple[Order, _OrderWork]], exc: Exception) -> Outcomes:
        message = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, ConfigError):
            self._log_error("deals", message)
        return {j.id: message for _o, item in work.values() for j in item.jobs}

    def _log_error(self, object_type: str, message: str) -> None:
        self.store.log(self.tenant_id, LogLevel.ERROR, "outbound.push",
                       f"pushing {object_type} to HubSpot failed: {message}")

    # ---- manual resolution ---------------------------------------------------------------

    def resolve_conflict(self, conflict_id: int, choice: str, *, value: str | None = None,
                         decided_by: str | None = None) -> ConflictRecord:
        """Resolve an open conflict with ``hubspot``, ``ambac`` or a typed ``value``, on both
        sides (see :class:`~._conflict_resolution.ConflictResolver`).

        The decision goes to HubSpot through this push's writes, so the values written are
        remembered (their webhook echo is recognised) and missing properties are reported alike.
        """
        resolver = ConflictResolver(self.parts, self.options, write=self._write,
                                    pipeline_stages=self._stages)
        return resolver.resolve(conflict_id, choice, value=value, decided_by=decided_by)


class OutboundPushError(HubSpotError):
    """A push did not get through; the job queue retries it with backoff (message says why)."""


def _recorded(job: Job) -> tuple[datetime, int]:
    """When the host recorded a shipment job, as an order: the enqueue time, then the id (ids
    alone do not do: SQLite hands a deleted row's id out again once the queue is empty)."""
    return job.created_at, job.id


def _shipment_mark(job: Job) -> str:
    """The :data:`SHIPMENT_MARK` text of the newest shipment written to a deal."""
    return f"{job.created_at.isoformat()} {job.id}"


def _marked(mark: str | None) -> tuple[datetime, int] | None:
    """A :data:`SHIPMENT_MARK` read back (None when there is none or it is unreadable)."""
    recorded, _, job_id = (mark or "").rpartition(" ")
    try:
        return datetime.fromisoformat(recorded), int(job_id)
    except ValueError:
        return None


def _noteworthy(order: Order, status_jobs: Sequence[Job], pushed: Mapping[str, str]) -> bool:
    """Whether a push's status jobs need a note: the deal did not already show the order's
    status before this push (a reconciliation that found the change first has pushed and noted
    it; the host's event arriving later must not note it again), or a job is a retry (its note
    may be what failed: the notes check its mark)."""
    if any(job.attempts > 1 for job in status_jobs):
        return True
    shown = pushed.get("ambac_order_status")
    return shown is None or normal_form(shown) != normal_form(order.order_status.value)


def handle_outbound_job(job: Job, *, store: JobQueue, worker_id: str,
                        engine_for: Callable[[str], OutboundPush], lease: timedelta,
                        max_jobs: int = 1000, on_failed: Callable[[Job], None] | None = None) -> None:
    """The job handler of every outbound kind: claim more due outbound jobs and push them all.

    ``job`` is the one the queue runner claimed (it completes or fails it from what this
    raises); the others are claimed here with the same lease owner as ``job`` (its claim's,
    else ``worker_id``), so they share its attempt's fencing; their leases are kept fresh
    while the push runs (:func:`~.store.keep_leases`, with the runner's ``lease``), and they
    are completed or failed here one by one. Jobs are pushed in id order. A tenant's jobs
    whose lease was lost meanwhile (another worker runs them) are not pushed.
    """
    from .store import keep_leases  # loads the queue's SQL side: only when a push runs

    worker_id = job.lease_owner or worker_id
    jobs = [job]
    while len(jobs) < max_jobs:
        more = store.claim(worker_id, kinds=JOB_KINDS, limit=min(500, max_jobs - len(jobs)),
                           lease=lease)
        if not more:
            break
        jobs.extend(more)
    by_tenant: dict[str, list[Job]] = defaultdict(list)
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
                failed = store.fail(item.id, worker_id, error)
                if on_failed is not None:
                    on_failed(failed)
        except LeaseLostError:
            log.warning("outbound job %s: lease lost before reporting back", item.id)
    error = outcomes.get(job.id)
    if error is not None:
        raise OutboundPushError(error)

