"""What the inbound sync runs with and reports: its trigger stages and its run records.

:class:`Triggers` says which deal stages create orders (validated against the portal's
pipelines); :class:`Outcome` is what happened to one deal, :class:`RunResult` the counts of one
run, and :class:`Preview` what creating an order from one deal would do.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from .errors import ConfigError
from .host import OrderDraft, OrderStatus

if TYPE_CHECKING:
    from ._linking import Chunk, RecordLinker
    from .client import Deal, HubSpotClient, Pipeline
    from .host import HostServices, Order
    from .mapping import MappingStrategy
    from .store import SyncStore

__all__ = ["EngineSide", "Outcome", "Preview", "RunResult", "Triggers", "backfill_checkpoint", "checked_changes",
           "newest_versions", "order_external_id", "version_of", "with_status_values"]


def backfill_checkpoint(name: str, since: datetime | None, stage_ids: Iterable[str]) -> str:
    """The checkpoint of a backfill over these trigger stages since ``since`` (``name`` and a
    fingerprint of both), so that only a run over the same deals resumes it."""
    scope = "|".join([since.isoformat() if since else "", *sorted(stage_ids)])
    return f"{name}.{hashlib.sha256(scope.encode()).hexdigest()[:12]}"


def order_external_id(portal_id: str, deal_id: str) -> str:
    """The external id that makes order creation idempotent."""
    return f"hubspot:{portal_id}:deal:{deal_id}"


@attrs.frozen
class Triggers:
    """The deal stages that create orders, per pipeline, and the stage-to-status map."""

    stages: Mapping[str, frozenset[str]]
    stage_status: Mapping[str, OrderStatus]
    stage_labels: Mapping[str, str]

    @classmethod
    def from_settings(
        cls,
        pipelines: Sequence[Pipeline],
        trigger_stages: Mapping[str, Sequence[str]] | None,
        stage_status_map: Mapping[str, OrderStatus],
    ) -> Triggers:
        """Validate configured stages against the portal's pipelines.

        No configuration means every won stage (closed, probability 1.0) of every pipeline.
        Unknown pipelines or stages raise ``ConfigError`` with the valid choices.
        """
        by_pipeline = {p.id: {s.id for s in p.stages} for p in pipelines}
        labels = {s.id: f"{p.label} / {s.label}" for p in pipelines for s in p.stages}
        problems: list[tuple[str, str]] = []
        if trigger_stages is None:
            stages = {p.id: frozenset(s.id for s in p.stages if s.is_won) for p in pipelines}
        else:
            stages = {}
            for pipeline, wanted in trigger_stages.items():
                if pipeline not in by_pipeline:
                    problems.append((f"trigger_stages.{pipeline}",
                                     f"no such pipeline; valid pipeline ids: {sorted(by_pipeline)}"))
                    continue
                unknown = [s for s in wanted if s not in by_pipeline[pipeline]]
                if unknown:
                    problems.append((f"trigger_stages.{pipeline}",
                                     f"unknown stage ids {unknown}; valid stage ids of this pipeline: "
                                     f"{sorted(by_pipeline[pipeline])}"))
                stages[pipeline] = frozenset(s for s in wanted if s in by_pipeline[pipeline])
        every_stage = set().union(*by_pipeline.values()) if by_pipeline else set()
        for stage in stage_status_map:
            if stage not in every_stage:
                problems.append((f"stage_status_map.{stage}",
                                 f"unknown stage id; valid stage ids: {sorted(every_stage)}"))
        if problems:
            raise ConfigError.from_problems(problems)
        return cls(stages, dict(stage_status_map), labels)

    def is_trigger(self, deal: Deal) -> bool:
        """Whether the deal sits in a trigger stage of its pipeline."""
        pipeline = deal.properties.get("pipeline") or "default"
        return (deal.properties.get("dealstage") or "") in self.stages.get(pipeline, frozenset())

    @property
    def all_stage_ids(self) -> list[str]:
        """Every trigger stage id, for the backfill search."""
        return sorted(set().union(*self.stages.values())) if self.stages else []


@attrs.frozen
class Outcome:
    """What happened (or, in a dry run, would happen) to one deal, and why."""

    deal_id: str
    action: str  # created, updated, unchanged, skipped, failed
    reason: str
    order_id: str | None = None
    fields: tuple[str, ...] = ()


@attrs.define
class RunResult:
    """Counts of one run; ``outcomes`` only when the caller asked to keep them."""

    kind: str
    dry_run: bool
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    run_id: int | None = None
    outcomes: list[Outcome] = attrs.field(factory=list)

    def count(self, outcome: Outcome) -> None:
        """Add one outcome to the counts."""
        field = {"created": "created", "updated": "updated", "unchanged": "unchanged",
                 "skipped": "skipped", "failed": "failed"}[outcome.action]
        setattr(self, field, getattr(self, field) + 1)


@attrs.frozen
class Preview:
    """What creating an order from one deal would do, for a person to review."""

    deal_id: str
    draft: OrderDraft
    warnings: tuple[str, ...]
    existing_order: Order | None
    company: str
    contacts: tuple[str, ...]
    kept_by_plugin: Mapping[str, object] = attrs.field(factory=dict)
    """Mapped order values the host has no field for: the plugin keeps them in its own records."""
    #: The company's values the host has no field for (its domain, phone, address as JSON),
    #: kept in the plugin's own records.
    company_kept: Mapping[str, Any] = attrs.field(factory=dict)
    #: What was reviewed (:func:`version_of`): creating with it refuses a deal changed since.
    version: str = ""


def version_of(deal: Deal, chunk: Chunk) -> str:
    """A short fingerprint of a deal and its associated company and contacts as HubSpot holds
    them now (ids and modification times, from the chunk :meth:`~._linking.RecordLinker.load_related`
    read): the review step's proof that what is created is what the reviewer saw."""
    def part(kind: str, record_id: str, record: Any) -> str:
        # Linked records are not read (only their ids are known): the id binds which one it is.
        changed = record.updated_at.isoformat() if record is not None and record.updated_at else ""
        return f"{kind}:{record_id}@{changed}"

    company = chunk.company_of.get(deal.id)
    parts = [part("deal", deal.id, deal),
             part("company", company or "", chunk.companies.get(company or "")),
             *(part("contact", c, chunk.contacts.get(c)) for c in sorted(chunk.contacts_of.get(deal.id, [])))]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def newest_versions(deals: Sequence[Deal]) -> list[Deal]:
    """Each deal once, its newest version: a deal modified mid-read can come twice."""
    newest: dict[str, Deal] = {}
    for deal in deals:
        if deal.id not in newest or deal.updated_at >= newest[deal.id].updated_at:
            newest[deal.id] = deal
    return list(newest.values())


def checked_changes(changes: Mapping[str, object], order_fields: frozenset[str]) -> None:
    """Refuse a reviewer's change of a field no mapping sets, or one this host's orders lack."""
    from .mapping import ORDER_FIELDS

    unknown = set(changes) - ORDER_FIELDS
    if unknown:
        raise ConfigError(f"Cannot set {sorted(unknown)} on an order; editable fields: {sorted(ORDER_FIELDS)}")
    lacking = sorted(set(changes) - order_fields)
    if lacking:
        raise ConfigError(f"This host's orders have no field {lacking[0]!r}; editable fields: "
                          f"{sorted(ORDER_FIELDS & order_fields)}")


def with_status_values(synced: Mapping[str, object]) -> dict[str, object]:
    """A link's last synced values with ``order_status`` as the host's value: a version that
    kept the labels recorded ``In progress`` for ``IN_PROGRESS``, which must compare equal."""
    found = dict(synced)
    recorded = found.get("order_status")
    if isinstance(recorded, str):
        with contextlib.suppress(ValueError):  # not a status at all: compared as it is, as before
            found["order_status"] = OrderStatus.parse(recorded).value
    return found


class EngineSide:
    """The parts :class:`~._inbound.InboundSync` gives the mixins it is made of
    (:class:`~._deal_review.DealReview`, :class:`~._linked_records.LinkedRecordUpdates`,
    :class:`~._chunk_links.ChunkLinks`)."""

    if TYPE_CHECKING:
        tenant_id: str
        portal_id: str
        client: HubSpotClient
        mapping: MappingStrategy
        store: SyncStore
        host: HostServices
        _linker: RecordLinker
