"""Reading the next batch while the current one is written.

A sync run alternates between HubSpot reads (a search page, the deals' associations) and host
and store writes. Done one after the other, every HubSpot round trip and every wait for the
rate limiter adds to the run's time. :func:`read_ahead` does the reads of batch N+1 in a thread
while the caller writes batch N, so a run takes about the longer of the two, not their sum.
The thread mostly waits on sockets, where Python releases the GIL.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

__all__ = ["STOP_WAIT", "read_ahead"]

T = TypeVar("T")
U = TypeVar("U")

STOP_WAIT = 5.0
"""Seconds the caller waits, when it stops early, for the reader to finish its current batch.
The reader starts no new batch after that, but a HubSpot call it is in cannot be cut short."""

def read_ahead(batches: Iterator[T], prepare: Callable[[T], U], *, name: str) -> Iterator[tuple[T, U]]:
    """Yield ``(batch, prepare(batch))`` for each batch of ``batches``, in order.

    A thread named ``name`` takes the batches and prepares them one ahead of the caller: it
    takes the next batch when the caller takes this one, so at most one waits. An exception
    raised in it (by ``batches`` or ``prepare``) is raised here, where its batch would have
    come, after every batch before it. Closing the generator early (the caller raised or
    stopped) makes the thread stop after the batch it is on; it is waited for up to
    :data:`STOP_WAIT` seconds.
    """
    done: queue.Queue[tuple[str, object]] = queue.Queue()
    room = threading.Semaphore(1)  # a batch is taken only once the caller has the one before
    stop = threading.Event()

    def read() -> None:
        # No timeouts (a test's frozen clock would stall them): a caller that stops sets
        # ``stop`` and releases ``room``, so the reader wakes and ends.
        try:
            while True:
                room.acquire()
                if stop.is_set():
                    return
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                done.put(("batch", (batch, prepare(batch))))
        except BaseException as exc:  # handed to the caller, raised there
            done.put(("error", exc))
        else:
            done.put(("end", None))

    reader = threading.Thread(target=read, name=name, daemon=True)
    reader.start()
    try:
        while True:
            kind, value = done.get()
            room.release()
            if kind == "end":
                return
            if kind == "error":
                assert isinstance(value, BaseException)
                raise value
            yield value  # type: ignore[misc]  # a (batch, prepared) pair, put by read()
    finally:
        stop.set()
        room.release()
        reader.join(STOP_WAIT)

