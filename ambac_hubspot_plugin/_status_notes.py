"""Status-change notes on deals: 100 per HubSpot call, and never one written twice.

When ``outbound.notes_on_status_change`` is on, each pushed order whose status changed gets
one note on its deal ("status changed from A to B"), coalescing the changes of one push. The
notes of a push go out as batch creates of up to 100, each note associated with its deal in
the same request (type 214), so 2,000 changes cost 20 calls instead of 2,000.

A batch create is not idempotent: sent again after HubSpot made the notes but the answer was
lost (a read timeout, a reset, a 5xx, a crash), it makes them again. So every note carries a
mark per status job it stands for, ``ref <job mark>:<status>`` at its end, where the job mark
is a digest of the tenant, the job's id and the time it was queued (stable across attempts,
unique across stores). A job on its first attempt cannot have a note yet. A job on a later
attempt may: before writing, the push reads its deal's notes (the v4 association read, which
has no search index lag, then a batch read of their bodies) and looks for its mark.

- A mark with the order's current status: that note is written; nothing is sent.
- A mark with an older status: a later change joined the job while it waited to be retried;
  the new note says "from <that status> to <current>".
- No mark: the note was never made; it is made now.

So a note is made at most once per job and status, and a failure loses none: a batch that
failed in a way that may have written it is retried by the queue (with backoff, then a dead
letter) and checked first. HubSpot refusing a whole batch for one bad note splits it down to
that note (:mod:`._batches`); a 429 is retried by the client, since a 429 writes nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import attrs

from ._batches import is_unknown_outcome, send_in_batches
from .client import DealNote
from .errors import HubSpotError
from .host import OrderStatus

if TYPE_CHECKING:
    from .client import HubSpotClient
    from .host import Order
    from .store import Job

__all__ = ["NoteWork", "StatusNotes", "job_mark"]

#: ``<job mark>:<status value>`` in a note body; the job mark is 12 hex digits.
_MARK = re.compile(r"\b([0-9a-f]{12}):([A-Z][A-Z_]*)\b")
UNKNOWN = "HubSpot may or may not have made the note; the retry looks for it before writing:"


@attrs.frozen
class NoteWork:
    """One deal's status change to note: its order now, and the status jobs behind it."""

    deal_id: str
    order: Order
    status_jobs: tuple[Job, ...]


def job_mark(tenant_id: str, job: Job) -> str:
    """The mark of a status job in its note: the same on every attempt, another for every job."""
    seed = f"{tenant_id}\x00{job.id}\x00{job.created_at.isoformat()}"
    return hashlib.sha256(seed.encode()).hexdigest()[:12]


class StatusNotes:
    """Writes the status-change notes of one push; see the module docstring."""

    def __init__(self, client: HubSpotClient, tenant_id: str, clock: Callable[[], datetime]) -> None:
        self.client = client
        self.tenant_id = tenant_id
        self.clock = clock

    def write(self, work: Sequence[NoteWork]) -> dict[int, str | None]:
        """Note each deal's change; return each status job's outcome (None: done)."""
        outcomes: dict[int, str | None] = {}
        found, unchecked = self._written_marks([w for w in work if _retried(w)])
        notes: list[tuple[DealNote, NoteWork]] = []
        when = self.clock()
        for item in work:
            if item.deal_id in unchecked:
                outcomes.update({j.id: unchecked[item.deal_id] for j in item.status_jobs})
                continue
            note = self._note(item, found.get(item.deal_id, {}), when)
            if note is None:
                outcomes.update({j.id: None for j in item.status_jobs})
            else:
                notes.append((note, item))

        def send(chunk: Sequence[tuple[DealNote, NoteWork]]) -> None:
            result = self.client.create_notes_on_deals([note for note, _item in chunk])
            refused = {e.id: e for e in result.failed if e.id is not None}
            for note, item in chunk:
                error: str | None = None
                if note.key in refused:
                    e = refused[note.key]
                    error = f"HubSpot refused the note: {e.status} {e.category or ''} {e.message}"
                elif note.key not in result.created:
                    error = f"{UNKNOWN} HubSpot's answer did not name it"
                outcomes.update({j.id: error for j in item.status_jobs})

        def failed(chunk: Sequence[tuple[DealNote, NoteWork]], exc: HubSpotError) -> None:
            message = f"{type(exc).__name__}: {exc}"
            if is_unknown_outcome(exc):
                message = f"{UNKNOWN} {message}"
            for _note, item in chunk:
                outcomes.update({j.id: message for j in item.status_jobs})

        send_in_batches(notes, send, failed)
        return outcomes

    def _note(self, item: NoteWork, written: Mapping[str, set[str]], when: datetime) -> DealNote | None:
        """The note still to write for ``item``, given the marks its deal's notes hold."""
        current = item.order.order_status
        marks = [job_mark(self.tenant_id, j) for j in item.status_jobs]
        if all(current.value in written.get(m, ()) for m in marks):
            return None  # written by an attempt whose answer was lost
        unwritten = [j for j, m in zip(item.status_jobs, marks, strict=True) if m not in written]
        if unwritten:
            previous = _status_label(unwritten[0].payload.get("previous_status"))
        else:  # noted already, then a later change joined the job while it waited
            older = sorted(written[marks[-1]] - {current.value})
            previous = _status_label(older[0]) if older else ""
        # The note is for people: labels. A job recorded by an older version carries a label.
        refs = " ".join(f"{m}:{current.value}" for m in marks)
        body = (f"Ambac Tracker: order {item.order.order_number} status changed "
                f"from {previous or 'unknown'} to {current.label}. (ref {refs})")
        return DealNote(key=marks[0], deal_id=item.deal_id, body=body, when=when)

    def _written_marks(
        self, retried: Sequence[NoteWork]
    ) -> tuple[dict[str, dict[str, set[str]]], dict[str, str]]:
        """For deals whose jobs were tried before: the marks their notes hold (deal -> mark ->
        statuses), or, when they cannot be read, why (deal -> error)."""
        deals = list(dict.fromkeys(w.deal_id for w in retried))
        if not deals:
            return {}, {}
        try:
            links = self.client.read_associations("deals", "notes", deals)
            note_ids = sorted({link.to_id for found in links.values() for link in found})
            bodies = {note.id: note.properties.get("hs_note_body") or ""
                      for note in self.client.read_notes(note_ids, ["hs_note_body"])}
        except HubSpotError as exc:
            why = (f"could not look for the note an earlier attempt may have made "
                   f"({type(exc).__name__}: {exc}); retried later")
            return {}, dict.fromkeys(deals, why)
        marks: dict[str, dict[str, set[str]]] = {}
        for deal_id in deals:
            held = marks.setdefault(deal_id, {})
            for link in links.get(deal_id, ()):
                for mark, status in _MARK.findall(bodies.get(link.to_id, "")):
                    held.setdefault(mark, set()).add(status)
        return marks, {}


def _retried(item: NoteWork) -> bool:
    """Whether a job of ``item`` was claimed before (``attempts`` counts this claim too)."""
    return any(j.attempts > 1 for j in item.status_jobs)


def _status_label(value: object) -> str:
    """The label of a recorded status value (or of an older version's label); other text as is."""
    if not value:
        return ""
    try:
        return OrderStatus.parse(value).label
    except ValueError:
        return str(value)
