"""Splitting: the ``webhook.inbox`` job handler. It turns a tenant's stored deliveries into
deduplicated events and queues one ``webhook.object`` job per object that got new ones, in
one transaction per round, making way for the receiver as it goes.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..store import INBOX_JOB_KEY, Inbox, JobQueue  # the ports only: no SQLAlchemy
from ._events import INBOX_JOB_KIND, JOB_KIND, event_drafts, parse_batch

if TYPE_CHECKING:
    from ..store import InboxEventDraft, Job

__all__ = ["InboxQueue", "WebhookInboxSplitter", "split_drafts"]


class InboxQueue(Inbox, JobQueue, Protocol):
    """A store that is both the inbox and the job queue (as :class:`~ambac_hubspot_plugin.store.SqlStateStore`)."""


class WebhookInboxSplitter:
    """The ``webhook.inbox`` job handler: splits a tenant's stored deliveries into events.

    Each round takes the oldest deliveries (up to ``per_round`` of them and about 100 events
    on SQLite, 1,000 on PostgreSQL) and in one transaction stores their events once (see :func:`dedupe_key`), queues a
    ``webhook.object`` job per object that got new events and deletes the deliveries. After
    ``rounds`` rounds with deliveries still waiting it queues its own follow-up and returns,
    so one tenant's flood cannot hold a worker (or outlive a lease) indefinitely.

    It also makes way for the receiver: when they share a process (the plugin's background
    worker), the interpreter passes from a busy thread to a waiting one only every 5 ms, and a
    request waits for it several times; so the splitter sleeps ``pause`` seconds after parsing
    a delivery, after hashing its events and between rounds. At 5,000 events/s that brought
    the receiver's p99 (``bench_webhooks.py --split thread``) from 32-153 ms to 29-90 ms, for
    about a fifth of the split's speed (6,200-6,500 instead of 7,900-8,600 events/s here).

    :param max_attempts: attempts of the jobs it queues, ``webhook.object`` and its own
        follow-up (None: the store's).
    """

    def __init__(self, inbox_for: Callable[[str], InboxQueue], *,
                 max_attempts: int | None = None, per_round: int = 50, rounds: int = 200,
                 pause: float = 0.0005) -> None:
        self._inbox_for = inbox_for
        self._max_attempts = max_attempts
        self._per_round, self._rounds = per_round, rounds
        self._pause = pause

    def handle_job(self, job: Job) -> None:
        """Split the job's tenant's deliveries; raise (the job retries) on failure."""
        inbox = self._inbox_for(job.tenant_id)
        drafts_of = functools.partial(split_drafts, pause=self._pause)
        for _ in range(self._rounds):
            done = inbox.expand_webhook_batches(
                job.tenant_id, drafts_of, job_kind=JOB_KIND, max_attempts=self._max_attempts,
                limit=self._per_round)
            if not done.more:
                return
            # The round has committed, so the writer is free, but this thread still holds the
            # interpreter: a receiver thread of this process would get it only at the next
            # 5 ms switch, perhaps after the next round took the writer again. Sleeping hands
            # both over to a waiting request (the p99 figures in the class docstring).
            time.sleep(2 * self._pause)
        # Bounded: a follow-up job instead of more rounds, so one tenant's flood cannot hold
        # this worker (and this job's lease) indefinitely; other jobs can take a turn.
        # The dedupe key keeps it the tenant's only pending split, however many deliveries
        # arrive meanwhile.
        inbox.enqueue(job.tenant_id, INBOX_JOB_KIND, {}, dedupe_key=INBOX_JOB_KEY,
                      max_attempts=self._max_attempts)


def split_drafts(body: bytes, pause: float = 0.0) -> list[InboxEventDraft]:
    """A stored delivery's event drafts; ``pause`` seconds of sleep after each step."""
    events = parse_batch(body)
    if pause:
        # Parsing and hashing hold the interpreter; a receiver thread of this process waits
        # for it (the switch interval is 5 ms), so give it a turn between the two steps.
        time.sleep(pause)
    drafts = event_drafts(events)
    if pause:
        time.sleep(pause)  # and again before the next delivery is parsed
    return drafts
