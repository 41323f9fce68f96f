"""The webhook feature's parts for the job handler assembly (``_jobs``): the receiver the
route serves and the handlers of the ``webhook.inbox`` and ``webhook.object`` jobs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._host_ids import is_host_id
from ._events import INBOX_JOB_KIND, JOB_KIND
from ._processor import EchoCheck, EventApplier, WebhookProcessor
from ._receiver import WebhookReceiver, WebhookTarget
from ._splitter import WebhookInboxSplitter

if TYPE_CHECKING:
    from .._tenants import Tenants
    from ..settings import Secret, Settings
    from ..store import Job

__all__ = ["webhook_intake", "webhook_secret"]

log = logging.getLogger(__name__)


def webhook_secret(settings: Settings) -> Secret | None:
    """The secret that signs a tenant's deliveries: ``webhook_client_secret``, else the OAuth
    app's client secret, else None (not configured)."""
    if settings.webhook_client_secret is not None:
        return settings.webhook_client_secret
    return getattr(settings.credentials, "client_secret", None)


def webhook_intake(
    tenants: Tenants, applier: EventApplier, *, is_echo: EchoCheck | None = None,
    batch: int = 1000, **receiver_options: Any,
) -> tuple[WebhookReceiver, dict[str, Callable[[Job], None]]]:
    """The receiver of the tenants' deliveries, and the handlers of the ``webhook.inbox``
    (splitter) and ``webhook.object`` (processor) jobs, by kind.

    The ``webhook.object`` handler claims up to ``batch`` due jobs of its kind at once (with
    the runner's worker id, their leases kept fresh like the first's) and processes them
    together. 1,000 is what one association batch read takes: under a burst the HubSpot budget
    (190 calls per 10 s by default) is the bound, and batches of 200 spent 100 of the 220 calls
    of 10,000 closed-won deals on associations, against 20 now. A quiet portal's batches are
    as small as what is due. List ``receiver.route()`` in the plugin's routes.
    """

    def resolve(key: str) -> WebhookTarget | None:
        if not is_host_id(key):
            return None
        tenant_id = key
        if not tenants.is_enabled(tenant_id):
            return None
        settings = tenants.tenant(tenant_id).settings
        return WebhookTarget(tenant_id, settings.portal_id, webhook_secret(settings),
                             tenants.store_for(tenant_id), settings.public_base_url)

    def handle(job: Job) -> None:
        from ..store import LeaseLostError, keep_leases

        store = tenants.store_for(job.tenant_id)
        lease = tenants.job_lease
        owner = job.lease_owner or tenants.worker_id  # the runner's claim: its fencing covers these
        jobs = [job, *store.claim(owner, kinds=[JOB_KIND], limit=batch - 1, lease=lease)]
        # The runner renews only the lease of the job it handed over. The jobs claimed here
        # beside it need the same heartbeat: a batch can outlast one lease, and a lapsed lease
        # lets another worker claim that object's job and apply its events at the same time,
        # the one thing the queue's one-job-per-object rule exists to prevent.
        keeper = keep_leases(store, jobs[1:], owner, lease)  # the runner keeps job's
        try:
            with keeper:
                # A job whose lease lapsed anyway (this process stalled) belongs to the worker
                # that took it over: its events are skipped, and its result is not written.
                errors = processor.handle_jobs(jobs, lost=keeper.lost)
        except Exception as exc:  # e.g. the store failed: every claimed job retries, none waits for its lease
            errors = dict.fromkeys((j.id for j in jobs), exc)
        for other in jobs[1:]:
            if other.id in keeper.lost or other.id not in errors:
                continue
            try:
                tenants.report_failed(store.fail(other.id, owner,
                                                 f"{type(errors[other.id]).__name__}: {errors[other.id]}"))
            except LeaseLostError:
                log.warning("webhook job %s: lease lost before reporting back", other.id)
        # The ones that succeeded, in one transaction (one each was most of a batch's time).
        done = [other.id for other in jobs[1:] if other.id not in keeper.lost and other.id not in errors]
        for job_id in sorted(store.complete_many(done, owner)):
            log.warning("webhook job %s: lease lost before reporting back", job_id)
        if job.id in errors:
            raise errors[job.id]

    receiver_options.setdefault("clock", tenants.clock)
    processor = WebhookProcessor(tenants.store_for, applier, is_echo=is_echo)
    splitter = WebhookInboxSplitter(tenants.store_for,
                                    max_attempts=receiver_options.get("max_attempts"))
    return WebhookReceiver(resolve, **receiver_options), {
        INBOX_JOB_KIND: splitter.handle_job,
        JOB_KIND: handle,
    }
