"""Every job kind this version processes, and which feature handles it: the one place the job
handlers are assembled.

Read :func:`job_handlers` top to bottom for the two directions data flows in:

- HubSpot to the host, in real time: the webhook route's receiver stores a delivery whole with
  a ``webhook.inbox`` job; the splitter turns it into events and one ``webhook.object`` job
  per object; the processor orders an object's events, drops echoes of our own writes and
  hands the rest to the :class:`~._webhooks.EngineApplier`, which runs them through the
  inbound engine into the host. Scheduled: ``sync.incremental`` runs the inbound engine over
  deals modified since its checkpoint; ``inbound.deal`` retries one deal that failed.
- The host to HubSpot: the host's event hooks record ``host.*`` jobs; the outbound engine
  pushes them (and ``outbound.*`` follow-ups) to HubSpot; ``outbound.reconcile`` finds order
  changes the hooks could not record. The push of a record with a conflict held for a person
  queues its reconciliation: ``inbound.deal`` for an order's deal, ``inbound.recheck`` for a
  company.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from ._job_kinds import JOB_KINDS as OUTBOUND_KINDS
from ._job_kinds import RECHECK_KIND, RETRY_KIND, SYNC_KIND
from ._reconcile import RECONCILE_KIND
from ._tenants import Tenants
from ._webhooks import EchoCheck, EngineApplier, WebhookReceiver, webhook_intake

if TYPE_CHECKING:
    from ._inbound import InboundSync
    from ._inbound_records import RunResult
    from ._outbound import OutboundPush
    from .store import Job

__all__ = ["Engines", "JobHandler", "RetryLater", "job_handlers"]

JobHandler = Callable[["Job"], None]


class RetryLater(Exception):
    """A job's work failed in a way the queue should retry with backoff (message says why)."""


class Engines(Tenants, Protocol):
    """The engines of an enabled tenant, built per job from its current context."""

    def inbound(self, tenant_id: str) -> InboundSync:
        ...

    def outbound(self, tenant_id: str) -> OutboundPush:
        ...

    def run_sync(self, tenant_id: str) -> RunResult:
        ...

    def reconcile_outbound(self, tenant_id: str) -> int:
        ...


def job_handlers(engines: Engines, *, is_echo: EchoCheck) -> tuple[WebhookReceiver, dict[str, JobHandler]]:
    """The webhook receiver, and the handler of every job kind this version processes.

    Jobs of other kinds stay queued, unclaimed, until a version that handles them runs.
    """
    receiver, webhook_jobs = webhook_intake(engines, EngineApplier(engines.inbound), is_echo=is_echo)
    return receiver, {
        **webhook_jobs,  # webhook.inbox -> splitter, webhook.object -> processor -> inbound
        **_inbound_jobs(engines),  # scheduled syncs and retried deals -> inbound
        **_outbound_jobs(engines),  # host events and follow-ups -> outbound -> HubSpot
    }


def _inbound_jobs(engines: Engines) -> Mapping[str, JobHandler]:
    def scheduled_sync(job: Job) -> None:
        # A scheduled sync of a tenant not enabled here is dropped: enabling schedules a new one.
        if engines.is_enabled(job.tenant_id):
            engines.run_sync(job.tenant_id)

    def retried_deal(job: Job) -> None:
        if not engines.is_enabled(job.tenant_id):
            # The checkpoint is past this deal: keep the job (backoff, then a dead letter to replay).
            raise RetryLater(f"the HubSpot plugin is not enabled for tenant {job.tenant_id} in this process")
        result = engines.inbound(job.tenant_id).process_ids([str(job.payload["deal_id"])], trigger="retry")
        failures = [o.reason for o in result.outcomes if o.action == "failed"]
        if failures:
            raise RetryLater(failures[0])

    def rechecked_record(job: Job) -> None:
        # A record the engine cannot apply (a mapping or host error) is logged as failed and
        # applied at its next HubSpot change, as a webhook's is: retrying the same values would
        # fail the same way. HubSpot and claim errors raise, and the queue retries them.
        if not engines.is_enabled(job.tenant_id):
            raise RetryLater(f"the HubSpot plugin is not enabled for tenant {job.tenant_id} in this process")
        plural = {"company": "companies", "contact": "contacts"}.get(str(job.payload.get("object_type")))
        object_id = job.payload.get("object_id")
        if plural is None or not isinstance(object_id, str | int) or isinstance(object_id, bool) or not str(object_id):
            # No version writes such a job: a dead letter says so, nothing is guessed.
            raise RetryLater(f"job {job.id} names no company or contact to recheck: {job.payload!r}")
        engines.inbound(job.tenant_id).update_linked(plural, [str(object_id)])

    return {SYNC_KIND: scheduled_sync, RETRY_KIND: retried_deal, RECHECK_KIND: rechecked_record}


def _outbound_jobs(engines: Engines) -> Mapping[str, JobHandler]:
    def push(job: Job) -> None:
        from ._outbound import handle_outbound_job

        handle_outbound_job(job, store=engines.store_for(job.tenant_id), worker_id=engines.worker_id,
                            lease=engines.job_lease, engine_for=engines.outbound,
                            on_failed=engines.report_failed)

    def reconcile(job: Job) -> None:
        # Like scheduled syncs: dropped for a tenant not enabled here; enabling schedules anew.
        if engines.is_enabled(job.tenant_id):
            engines.reconcile_outbound(job.tenant_id)

    return {**dict.fromkeys(OUTBOUND_KINDS, push), RECONCILE_KIND: reconcile}
