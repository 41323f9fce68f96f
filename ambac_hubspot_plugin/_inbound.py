"""Deals become orders: the inbound sync engine.

One path serves every way a deal arrives (scheduled incremental sync, backfill, manual
creation, webhooks, retries): :meth:`InboundSync.process` takes a batch of deals and, for each,
creates exactly one order (if the deal sits in a trigger stage and has none), or updates the
order's mapped fields through the conflict strategy, or says why it skipped it.

Exactly one order per deal, whatever crashes or races happen: the order carries the external
id ``hubspot:<portal>:deal:<id>`` (the host's create is idempotent on it), companies carry
``hubspot:<portal>:company:<id>`` likewise, and links are unique in the store. A process killed
between any two steps leaves nothing a rerun cannot adopt.

Calls to HubSpot are batched per chunk of up to 1,000 deals: one association read per direction,
and companies and contacts are read once per run. Memory holds one chunk and two id maps. The
host commits the writes of up to 100 new orders at once where it can (:class:`~.host.GroupsWrites`).

Orders made on demand after a person's review are :mod:`._deal_review`'s (a mixin of the
engine), and so are a chunk's links, jobs and log lines, written at its end (:mod:`._chunk_links`).
The deal's companies and contacts are resolved and linked by :mod:`._linking`; the run records
(:class:`~._inbound_records.Outcome`, ``RunResult``, ``Preview``) and the trigger stages are in
:mod:`._inbound_records`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ._chunk_links import ChunkLinks
from ._deal_properties import DELETED_FLAG, own_values
from ._deal_review import DealReview
from ._field_sync import HELD_FIELDS, Reconciled, reconcile_fields
from ._inbound_records import (
    Outcome,
    RunResult,
    Triggers,
    backfill_checkpoint,
    newest_versions,
    order_external_id,
    with_status_values,
)
from ._job_kinds import FIELDS_KIND, RETRY_KIND
from ._linked_records import LinkedRecordUpdates
from ._linking import WRITE_GROUP, Chunk, RecordLinker
from ._merges import adopt_merged_deals, merged_ids
from ._read_ahead import read_ahead
from .conflicts import ConflictStrategy, strategy_name, to_json
from .errors import HostRecordError, HubSpotUnavailableError, MappingError, RateLimitedError, StrategyError
from .events import OrderCreated, SyncStepFailed
from .host import OrderDraft
from .mapping import ORDER_FIELDS, DealContext
from .store import ClaimTimeoutError, ConflictDraft, LogLevel, RunStatus

if TYPE_CHECKING:
    from ._engine_parts import EngineParts
    from ._facade import PluginHooks
    from ._linking import Associations
    from .client import Deal
    from .host import Order
    from .store import Link

__all__ = ["InboundSync", "order_external_id"]

log = logging.getLogger(__name__)

CHUNK = 1_000  # deals per association batch read (HubSpot's limit for v4 batch read)
APPLIED_VERSION = "_hs_lastmodifieddate"
"""Key in a deal link's synced values: the deal version last applied (older ones are skipped)."""
BUSY_RETRY = timedelta(seconds=2)
"""How long after a chunk met a deal another worker was applying its retry job is due."""
CHECKPOINTS = {"incremental": "deals.modified_since", "backfill": "deals.backfill_since"}


class InboundSync(DealReview, LinkedRecordUpdates, ChunkLinks):
    """Turns the deals of one tenant's portal into orders."""

    def __init__(
        self,
        parts: EngineParts,
        *,
        conflicts: Callable[[str, str], ConflictStrategy],
        triggers: Triggers,
        timezone: ZoneInfo,
        overlap: timedelta,
        hooks: PluginHooks | None = None,
        reload_triggers: Callable[[], Triggers] | None = None,
        read_ahead: bool = True,
    ) -> None:
        self.tenant_id = parts.tenant_id
        self.portal_id = parts.portal_id
        self.host = parts.host
        self.store = parts.store
        self.client = parts.client
        self.mapping = parts.mapping
        self.conflicts = conflicts
        self.triggers = triggers
        self.timezone = timezone
        self.overlap = overlap
        self.clock = parts.clock
        self.hooks = hooks  # listeners of hubspot_order_created and hubspot_sync_step_failed
        self.reload_triggers = reload_triggers
        self.read_ahead = read_ahead  # the next chunk's reads in a thread (see _read_ahead)
        self._refreshed = False
        # The order fields the host keeps; mapped values of the others stay in the link's
        # synced values (the plugin's own record) and never reach the host.
        self._order_fields = parts.host.capabilities().order_fields
        # Lives as long as the engine (one run): it remembers the companies and contacts it
        # resolved, so each is read from HubSpot at most once per run.
        self._linker = RecordLinker(parts)
        self._retries: list[tuple[str, dict[str, Any], str | None]] = []  # the chunk's failed deals
        self._failed_steps: list[SyncStepFailed] = []  # ... for hubspot_sync_step_failed
        self._busy_retries: list[str] = []  # the chunk's deals another worker was applying
        self._notes: list[tuple[str, str]] = []  # (order id, text): notes on orders, after the chunk's writes
        self._told: list[OrderCreated | SyncStepFailed] = []  # for the listeners, once the claims are given up

    # ---- runs --------------------------------------------------------------------------------

    def run_incremental(
        self, *, dry_run: bool = False, keep_outcomes: bool = False,
        progress: Callable[[Outcome], None] | None = None,
    ) -> RunResult:
        """Process deals modified since the checkpoint (less the overlap), checkpointing as it goes."""
        start = self.clock()
        saved = self.store.get_checkpoint(self.tenant_id, self.portal_id, CHECKPOINTS["incremental"])
        since = datetime.fromisoformat(saved.value) - self.overlap if saved else datetime.fromtimestamp(0, start.tzinfo)
        deals = self.client.iter_modified_deals(since, self.mapping.deal_properties, until=start)
        return self._run("incremental", deals, start, dry_run, keep_outcomes, progress)

    def run_backfill(
        self, *, since: datetime | None = None, dry_run: bool = False, keep_outcomes: bool = False,
        progress: Callable[[Outcome], None] | None = None,
    ) -> RunResult:
        """Process every deal in a trigger stage (modified since ``since``), resumable."""
        start = self.clock()
        # Resumed only by a run over the same deals: another ``since`` or other trigger stages
        # start from their beginning (the killed run's checkpoint would skip theirs).
        key = backfill_checkpoint(CHECKPOINTS["backfill"], since, self.triggers.all_stage_ids)
        saved = self.store.get_checkpoint(self.tenant_id, self.portal_id, key)
        resume = datetime.fromisoformat(saved.value) if saved and not dry_run else None
        if resume is not None and since is not None:
            resume = max(resume, since)
        deals = self.client.iter_deals_in_stages(
            self.triggers.all_stage_ids, self.mapping.deal_properties, since=resume or since
        )
        result = self._run("backfill", deals, start, dry_run, keep_outcomes, progress, checkpoint=key)
        if not dry_run:
            # A finished backfill starts from scratch next time.
            self.store.set_checkpoint(self.tenant_id, self.portal_id, key,
                                      datetime.fromtimestamp(0, start.tzinfo).isoformat())
        return result

    def process_ids(self, deal_ids: Sequence[str], *, trigger: str) -> RunResult:
        """Read the deals' current state and process them (webhooks, retries); no checkpoint."""
        result = RunResult(kind=trigger, dry_run=False)
        deals = list(self.client.read_deals(list(deal_ids), self.mapping.deal_properties))
        for outcome in [*self.process(deals, trigger=trigger), *_not_found(deal_ids, deals)]:
            result.count(outcome)
            result.outcomes.append(outcome)
        return result

    def _run(
        self, kind: str, deals: Iterator[Deal], start: datetime, dry_run: bool,
        keep_outcomes: bool, progress: Callable[[Outcome], None] | None, checkpoint: str | None = None,
    ) -> RunResult:
        result = RunResult(kind=kind, dry_run=dry_run)
        run = None if dry_run else self.store.start_run(self.tenant_id, kind)
        result.run_id = run.id if run else None
        try:
            chunks = iter(lambda: list(itertools.islice(deals, CHUNK)), [])
            for chunk, ahead in (read_ahead(chunks, self._read_ahead, name=f"hubspot-read-ahead-{self.tenant_id}")
                                 if self.read_ahead else ((chunk, None) for chunk in chunks)):
                for outcome in self.process(chunk, trigger=kind, dry_run=dry_run, ahead=ahead):
                    result.count(outcome)
                    if keep_outcomes:
                        result.outcomes.append(outcome)
                    if progress is not None:
                        progress(outcome)
                if not dry_run:
                    # Deals come oldest first; never move past the run's start (index lag).
                    newest = min(chunk[-1].updated_at, start)
                    self.store.set_checkpoint(self.tenant_id, self.portal_id, checkpoint or CHECKPOINTS[kind],
                                              newest.isoformat())
                    assert run is not None
                    self.store.heartbeat_run(run.id)
        except BaseException as exc:  # Ctrl-C too: a run left "running" would say so for ever
            if run is not None:
                why = (f"{type(exc).__name__}: {exc}" if isinstance(exc, Exception)
                       else f"interrupted ({type(exc).__name__})")
                self.store.finish_run(run.id, RunStatus.FAILED, created=result.created,
                                      updated=result.updated, skipped=result.skipped + result.unchanged,
                                      failed=result.failed, error=why)
                self.store.log(self.tenant_id, LogLevel.ERROR, f"sync.{kind}",
                               f"{kind} sync stopped: {exc if isinstance(exc, Exception) else why}")
            raise
        if run is not None:
            self.store.finish_run(run.id, RunStatus.SUCCEEDED, created=result.created,
                                  updated=result.updated, skipped=result.skipped + result.unchanged,
                                  failed=result.failed)
            # A run that changed or failed something is worth a line; the many empty
            # scheduled runs are in the sync history only, so they do not bury it.
            if result.created or result.updated or result.failed or kind != "incremental":
                self.store.log(self.tenant_id, LogLevel.WARNING if result.failed else LogLevel.INFO,
                               f"sync.{kind}",
                               f"{kind} sync finished: {result.created} created, {result.updated} "
                               f"updated, {result.unchanged} unchanged, {result.skipped} skipped, "
                               f"{result.failed} failed (run {run.id})")
        return result

    # ---- one batch of deals --------------------------------------------------------------------

    def _read_ahead(self, deals: Sequence[Deal]) -> Associations:
        """The associations of the deals that will be new orders: run in the reader thread, so
        it calls HubSpot and the store, never the host (whose services may be per thread)."""
        links = self.store.get_links_by_hubspot(self.tenant_id, self.portal_id, "deal", [d.id for d in deals])
        return self._linker.read_associations([d for d in deals if d.id not in links and self.triggers.is_trigger(d)])

    def process(self, deals: Sequence[Deal], *, trigger: str, dry_run: bool = False,
                ahead: Associations | None = None) -> list[Outcome]:
        """Create or update the orders of these deals; return one outcome per deal. ``ahead``:
        associations of some of them read already (see :mod:`._read_ahead`).

        A deal another worker is applying right now is left out, then: a sync run (holding no
        claim by then) waits for it, up to 15 s, reads it again (the other worker may have
        written it to HubSpot too) and applies it; a webhook job, or a run that waited in vain or
        could not read it again (HubSpot unavailable), leaves it to a retry job due 2 s later (which
        waits for it, and reads it)."""
        deals = newest_versions(deals)
        outcomes = self._process_once(deals, trigger, dry_run, ahead)
        busy, self._busy_retries = self._busy_retries, []
        if busy and trigger in CHECKPOINTS:
            try:
                self._linker.claim("deal", busy, wait=True)
            except ClaimTimeoutError:
                pass
            else:
                try:
                    again = {o.deal_id: o for o in self._process_current(busy, trigger)}
                except (HubSpotUnavailableError, RateLimitedError, ClaimTimeoutError) as exc:
                    # The run's other deals are done: these few are left to their retry jobs
                    # rather than failing the run (and its chunk, done again by the next run).
                    # Not refused credentials or the like: those fail the run, as anywhere.
                    self._busy_retries = []
                    self.store.log(self.tenant_id, LogLevel.WARNING, "sync.busy",
                                   f"deal(s) {', '.join(busy[:10])}{' ...' if len(busy) > 10 else ''}, which "
                                   f"another worker was applying, could not be read again ({type(exc).__name__}: "
                                   f"{exc}); retry jobs apply them",
                                   record=f"deal:{busy[0]}")
                else:
                    outcomes = [again.get(o.deal_id, o) for o in outcomes]
                    busy, self._busy_retries = self._busy_retries, []  # none: they were held already
        if busy:
            self.store.enqueue_many(self.tenant_id, [
                (RETRY_KIND, {"deal_id": deal_id, "why": "busy"}, f"deal:{deal_id}") for deal_id in busy],
                run_after=self.clock() + BUSY_RETRY)
        return outcomes

    def _process_current(self, deal_ids: Sequence[str], trigger: str) -> list[Outcome]:
        """Read these deals (claimed already) from HubSpot and process them; a deal HubSpot no
        longer has is skipped."""
        try:
            deals = list(self.client.read_deals(list(deal_ids), self.mapping.deal_properties))
        except BaseException:
            self._release_then_tell()
            raise
        return [*self._process_once(newest_versions(deals), trigger, False, None), *_not_found(deal_ids, deals)]

    def _process_once(self, deals: Sequence[Deal], trigger: str, dry_run: bool,
                      ahead: Associations | None) -> list[Outcome]:
        try:
            links = self.store.get_links_by_hubspot(self.tenant_id, self.portal_id, "deal", [d.id for d in deals])
            # The new deals HubSpot merged others into are claimed before the merged deals'
            # orders are looked for, and their links read again (those another worker holds now
            # are left out, see process): a merge webhook moving such an order to one of them
            # has finished, or waits. Other new deals take no claim (a backfill pays nothing):
            # the order's external id and link keep a second writer from making their order, and
            # a merge that lands meanwhile is said in the log (_lost_deal_links). The linked
            # deals are claimed just before their updates (_process_chunk). A retry job holding
            # no other claim waits for them: the queue backs it off if it waits in vain.
            busy: set[str] = set()
            merged = [d.id for d in deals if d.id not in links and merged_ids(d)]
            if merged and not dry_run:
                mine = self._linker.claim("deal", merged, wait=trigger == "retry" and not self._linker.claims)
                busy = set(merged) - mine
                if mine:
                    links = {**links, **self.store.get_links_by_hubspot(self.tenant_id, self.portal_id, "deal", mine)}
            free = [d for d in deals if d.id not in busy]
            links = {**links, **adopt_merged_deals(self.host, self.store, self.tenant_id, self.portal_id,
                                                   [d for d in free if d.id not in links], dry_run=dry_run)}
            if any((d.properties.get("dealstage") or "") not in self.triggers.stage_labels
                   or (trigger == "incremental" and not self.triggers.is_trigger(d))
                   for d in free if d.id not in links):
                # A stage added in HubSpot since the pipelines were cached; or, in a scheduled run
                # (whose checkpoint then passes the deal), a stage just made closed won.
                self._refresh_triggers()
            new = [d for d in free if d.id not in links and self.triggers.is_trigger(d)]
            chunk = self._linker.load_related(new, ahead, dry_run=dry_run)
            if not dry_run:
                self._linker.claim_new_records(chunk)
            outcomes = self._process_chunk(deals, links, {d.id for d in new}, chunk, trigger, dry_run, busy)
        finally:
            self._release_then_tell()
        return outcomes

    def _release_then_tell(self) -> None:
        """Give up the chunk's claims, then tell the listeners of what it wrote: a listener may
        call back into the plugin, which claims; and told even when giving up the claims failed,
        for the orders and their links are stored (and are not made again to tell of them)."""
        try:
            self._linker.release_claims()
        finally:
            told, self._told = self._told, []
            if self.hooks is not None and told:
                self.hooks.tell(self.store, self.tenant_id, told)

    def _process_chunk(self, deals: Sequence[Deal], links: Mapping[str, Link], new_ids: set[str], chunk: Chunk,
                       trigger: str, dry_run: bool, busy: set[str]) -> list[Outcome]:
        """The deals' outcomes: ``busy`` ones left out (see :meth:`process`), the linked ones updated
        (their claims given up right after), the new ones made orders, 100 a host commit (their
        claims held until their links are written)."""
        done: dict[int, Outcome] = {}
        creates = [i for i, deal in enumerate(deals) if deal.id in new_ids]
        linked = [deal.id for deal in deals if deal.id in links]
        if linked and not dry_run:
            # Updated under their claims, their links read again (see claim_links); claimed only
            # now, so not held while the chunk read HubSpot or waited for its new records' claims.
            fresh = self._linker.claim_links("deal", {deal_id: links[deal_id] for deal_id in linked},
                                             wait=trigger == "retry" and not self._linker.claims)
            busy, links = busy | (set(linked) - set(fresh)), {**links, **fresh}
        try:
            # What the push last wrote to the linked deals, in one query: a value still there is ours.
            updated = [deal_id for deal_id in linked if deal_id not in busy]
            pushed = self.store.pushed_values_of(self.tenant_id, "deal", updated) if updated else {}
            for i, deal in enumerate(deals):  # updates (they write the store too) commit one by one
                if deal.id in busy:
                    done[i] = self._busy(deal.id)
                elif deal.id not in new_ids:
                    done[i] = self._outcome(deal, links, new_ids, chunk, trigger, dry_run, pushed)
        finally:
            self._linker.release_links("deal", [deal.id for deal in deals if deal.id not in new_ids])
        for start in range(0, len(creates), WRITE_GROUP):  # the host commits 100 new orders at once
            with self._linker.grouped_writes(not dry_run):
                for i in creates[start:start + WRITE_GROUP]:
                    done[i] = self._outcome(deals[i], links, new_ids, chunk, trigger, dry_run, pushed)
        outcomes = [done[i] for i in range(len(deals))]
        if not dry_run:
            self._flush_links(outcomes)
        return outcomes

    def _outcome(self, deal: Deal, links: Mapping[str, Link], new_ids: set[str], chunk: Chunk,
                 trigger: str, dry_run: bool, pushed: Mapping[str, Mapping[str, str]]) -> Outcome:
        try:
            if deal.id in links:
                return self._update(deal, links[deal.id], dry_run, pushed.get(deal.id, {}))
            if deal.id in new_ids:
                return self._create(deal, chunk, trigger, dry_run)
            stage = deal.properties.get("dealstage") or "(none)"
            if stage not in self.triggers.stage_labels:
                return self._unknown_stage(deal, stage, dry_run)
            return Outcome(deal.id, "skipped", f"stage {self.triggers.stage_labels[stage]} is not a trigger stage "
                           "(excluded)")
        except (MappingError, HostRecordError) as exc:
            # A retry job that fails again is retried by the queue itself, with backoff.
            return self._failed(deal.id, exc, dry_run, enqueue=trigger != "retry")

    def _busy(self, deal_id: str) -> Outcome:
        """Another worker is applying this deal now: :meth:`process` applies it once that worker
        is done, or leaves it to a retry job (which waits for the claim, and which the queue
        backs off if it waits in vain)."""
        self._busy_retries.append(deal_id)
        return Outcome(deal_id, "skipped", "another worker is applying this deal right now; a retry job "
                       "applies its newest version once it is done")

    def _refresh_triggers(self) -> None:
        """Re-read the pipelines, at most once per engine (they are cached for minutes)."""
        if not self._refreshed and self.reload_triggers is not None:
            self._refreshed = True
            self.triggers = self.reload_triggers()

    def _unknown_stage(self, deal: Deal, stage: str, dry_run: bool) -> Outcome:
        """A stage the pipelines API does not list: say so in the log, not just skip the deal."""
        message = (f"deal {deal.id} is in stage {stage!r} of pipeline {deal.properties.get('pipeline')!r}, which the "
                   "pipelines API does not list (deleted or renamed?); move the deal to an existing stage in HubSpot")
        if not dry_run:
            self._linker.log(LogLevel.WARNING, "inbound.deal", message, f"deal:{deal.id}")
        return Outcome(deal.id, "skipped", message)

    def _failed(self, deal_id: str, exc: MappingError | HostRecordError, dry_run: bool,
                *, enqueue: bool) -> Outcome:
        where = "HubSpot deal value" if isinstance(exc, MappingError) else "the host value"
        what = str(exc) if isinstance(exc, StrategyError) else (
            f"{where} {exc.field}={exc.value!r} cannot be used: {exc}")
        message = (f"deal {deal_id}: {what}. "
                   "The deal is retried when it changes in HubSpot, or replay it after fixing the mapping.")
        if not dry_run:
            self._linker.log(LogLevel.ERROR, "inbound.deal", message, f"deal:{deal_id}")
        if not dry_run and enqueue:
            self._retries.append((RETRY_KIND, {"deal_id": deal_id}, f"deal:{deal_id}"))
            self._failed_steps.append(SyncStepFailed(tenant_id=self.tenant_id, step=RETRY_KIND,
                                                     record=f"deal:{deal_id}", error=message,
                                                     attempt=1, will_retry=True))
        return Outcome(deal_id, "failed", message)

    # ---- create --------------------------------------------------------------------------------

    def _draft(self, deal: Deal, chunk: Chunk, dry_run: bool) -> tuple[OrderDraft, dict[str, Any], list[str]]:
        company_hubspot_id = chunk.company_of.get(deal.id)
        contact_ids = chunk.contacts_of.get(deal.id, [])
        context = DealContext(
            portal_id=self.portal_id, deal=deal,
            company=chunk.companies.get(company_hubspot_id) if company_hubspot_id else None,
            contacts=tuple(chunk.contacts[c] for c in contact_ids if c in chunk.contacts),
            stage_status=self.triggers.stage_status.get(deal.properties.get("dealstage") or ""),
            timezone=self.timezone,
        )
        fields = dict(self.mapping.order_fields(context))
        unknown = set(fields) - ORDER_FIELDS
        if unknown:
            raise MappingError(sorted(unknown)[0], fields[sorted(unknown)[0]],
                               f"the mapping strategy returned fields the engine does not own: {sorted(unknown)}")
        notes: list[str] = []
        company_id, how = self._linker.resolve_company(company_hubspot_id, chunk, dry_run)
        notes.append(how)
        customers = self._linker.resolve_contacts(contact_ids, chunk, company_id, dry_run)
        kept = {k: v for k, v in fields.items() if k in self._order_fields}
        draft = OrderDraft(external_id=order_external_id(self.portal_id, deal.id), company_id=company_id,
                           customer_id=customers[0] if customers else None, **kept)  # type: ignore[arg-type]  # fields are OrderDraft's
        return draft, fields, notes

    def _create(self, deal: Deal, chunk: Chunk, trigger: str, dry_run: bool) -> Outcome:
        # An order with the deal's external id but no link was made by an earlier run that
        # stopped before linking it: link it and say so, it was not created now.
        existing = self.host.find_order_by_external_id(order_external_id(self.portal_id, deal.id))
        draft, fields, notes = self._draft(deal, chunk, dry_run)
        if dry_run:
            if existing is not None:
                return Outcome(deal.id, "unchanged", f"would link the existing order "
                               f"{existing.order_number} (made by an earlier run)", existing.id)
            return Outcome(deal.id, "created", f"would create order {draft.name!r}; " + "; ".join(notes),
                           fields=tuple(sorted(fields)))
        if existing is not None:
            self._adopt(deal, existing, fields, trigger)
            return Outcome(deal.id, "unchanged", f"linked order {existing.order_number}, which already "
                           "existed (made earlier, e.g. by a run that stopped before linking it)", existing.id)
        order = self.host.create_order(draft)
        return self._adopt(deal, order, fields, trigger)

    def _adopt(self, deal: Deal, order: Order, fields: Mapping[str, Any], trigger: str) -> Outcome:
        """Queue the link of a created (or already existing) order; listeners hear of it once,
        from the writer whose link lands."""
        event = OrderCreated(tenant_id=self.tenant_id, portal_id=self.portal_id, deal_id=deal.id,
                             order=order, trigger=trigger)
        synced = {k: to_json(v) for k, v in fields.items()}
        synced[APPLIED_VERSION] = deal.updated_at.isoformat()
        self._linker.link("deal", deal.id, "order", order.id, synced, event)
        return Outcome(deal.id, "created", f"created order {order.order_number}", order.id, tuple(sorted(fields)))

    # ---- update --------------------------------------------------------------------------------

    def _update(self, deal: Deal, link: Link, dry_run: bool, pushed: Mapping[str, str]) -> Outcome:
        """Apply a linked deal's changes to its order; ``pushed``: what the push last wrote to it."""
        order = self.host.get_order(link.host_id)
        if order is None:
            return Outcome(deal.id, "skipped", f"linked order {link.host_id} no longer exists in the host",
                           link.host_id)
        if order.archived:
            return Outcome(deal.id, "skipped", "the order is archived; HubSpot changes are not applied to it", order.id)
        deleted = link.synced.get(DELETED_FLAG)
        if deleted is not None and not dry_run and deal.updated_at > datetime.fromisoformat(deleted):
            # Changed after its deletion: restored, though no restore webhook said so (missed).
            link = self.store.update_link_synced(link.id, {k: v for k, v in link.synced.items() if k != DELETED_FLAG})
            self._linker.log(LogLevel.INFO, "sync.restore", f"deal {deal.id} was restored in HubSpot; the order "
                             "follows it again", f"deal:{deal.id}")
        raw = link.synced.get(APPLIED_VERSION)
        applied = datetime.fromisoformat(raw) if isinstance(raw, str) else None
        if applied is not None and (deal.updated_at < applied or (
                deal.updated_at == applied and not link.synced.get(HELD_FIELDS))):
            # Search's index lags and the overlap re-reads on purpose: never go back in time. The
            # version applied is reconciled again only while a field is held: a host edit may
            # have ended the dispute (the push queues this deal's retry when the order changes).
            return Outcome(deal.id, "unchanged", "this version of the deal is already applied", order.id)
        context = DealContext(
            portal_id=self.portal_id, deal=deal, company=None, contacts=(),
            stage_status=self.triggers.stage_status.get(deal.properties.get("dealstage") or ""),
            timezone=self.timezone,
        )
        fields = dict(self.mapping.order_fields(context))
        done = self._reconcile(
            "order", f"deal:{deal.id}", fields, order, link, deal.updated_at, order.updated_at,
            host_fields=self._order_fields, own=own_values(self.mapping, fields, deal.properties, pushed))
        changes, synced, held, host_wins = done.changes, done.synced, done.held, done.host_wins
        synced[APPLIED_VERSION] = deal.updated_at.isoformat()
        if dry_run:
            if not changes:
                return Outcome(deal.id, "unchanged", "mapped fields already match", order.id)
            return Outcome(deal.id, "updated", f"would update {sorted(changes)}", order.id, tuple(sorted(changes)))
        if changes:
            self.host.update_order(order.id, changes)
        self._audit(done, link, "order", order.id)
        if synced != link.synced:
            self.store.update_link_synced(link.id, synced)
        if host_wins:
            self.store.enqueue(self.tenant_id, FIELDS_KIND,
                               {"object_type": "order", "host_id": order.id, "fields": host_wins})
        if not changes:
            reason = "mapped fields already match" + (f"; held for review: {held}" if held else "")
            return Outcome(deal.id, "unchanged", reason, order.id)
        return Outcome(deal.id, "updated", f"updated {sorted(changes)}", order.id, tuple(sorted(changes)))

    def _reconcile(
        self, object_type: str, record: str, fields: Mapping[str, object], current: object, link: Link,
        hubspot_changed_at: datetime | None, host_changed_at: datetime | None,
        host_fields: frozenset[str] | None = None, own: Sequence[str] = (),
    ) -> Reconciled:
        """:func:`._field_sync.reconcile_fields` for this link; its conflicts go to :meth:`_audit`
        once the host has taken the changes (a write the host refuses must leave no audit row
        claiming it was decided)."""
        last = with_status_values(link.synced) if object_type == "order" else dict(link.synced)
        return reconcile_fields(self.tenant_id, object_type, record, fields, current, last,
                                (hubspot_changed_at, host_changed_at), self.conflicts, host_fields, own)

    def _audit(self, done: Reconciled, link: Link, object_type: str, host_id: str) -> None:
        """Write a record's conflicts to the audit trail (a held one opens there), and close the
        held ones no longer in dispute, saying so in the log. ``host_id``: the record's id now (a
        versioned company's update may have made a new one, and moved its open conflicts there)."""
        for record in self.store.settle_conflicts(self.tenant_id, object_type, host_id, done.settled):
            self.store.log(self.tenant_id, LogLevel.INFO, "conflicts",
                           f"conflict {record.id} ({object_type} {host_id}, field {record.field}) is closed "
                           f"without a decision: {done.settled[record.field][1]}",
                           record=f"{link.object_type}:{link.hubspot_id}")
        for conflict, decision, strategy in done.conflicts:
            self.store.record_conflict(ConflictDraft(
                tenant_id=self.tenant_id, portal_id=self.portal_id, object_type=conflict.object_type,
                host_id=host_id, hubspot_type=link.object_type, hubspot_id=link.hubspot_id,
                field=conflict.field, hubspot_value=to_json(conflict.hubspot_value),
                host_value=to_json(conflict.host_value), last_synced=conflict.last_synced,
                hubspot_changed_at=conflict.hubspot_changed_at, host_changed_at=conflict.host_changed_at,
                strategy=strategy_name(strategy), decision=decision.winner, reason=decision.reason))


def _not_found(deal_ids: Sequence[str], deals: Sequence[Deal]) -> list[Outcome]:
    """The outcomes of the deals asked for that HubSpot did not return, once each."""
    found = {d.id for d in deals}
    return [Outcome(deal_id, "skipped", "HubSpot has no such deal (deleted or merged)")
            for deal_id in dict.fromkeys(deal_ids) if deal_id not in found]
