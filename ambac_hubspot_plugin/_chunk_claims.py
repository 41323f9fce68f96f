"""The store claims one chunk of deals holds while it writes host records, kept alive.

A chunk claims the email of each portal user and the domain of each company it may create
(``contact-email:…``, ``company-domain:…``), so that another worker process sharing the store
waits for the chunk's links instead of creating a second user or company. It takes them all at
once, or waits holding none (:meth:`ChunkClaims.take_all`): a chunk that held some while it
waited for another's could wait for that chunk while that chunk waits for it. It claims its
linked deals, and the new ones HubSpot merged others into, too (``deal:…``), so that two workers
never apply one deal at once; those it takes without waiting (:meth:`ChunkClaims.take_free`: a
deal another worker holds is applied later) and gives up once its updates, or its new orders'
links, are written (:meth:`ChunkClaims.release_keys`, :meth:`ChunkClaims.release`).
A webhook job applying linked companies or contacts claims them (``company:…``, ``contact:…``)
holding nothing else, and waits for them. A claim lives
:data:`~.store.CLAIM_TTL` (10 s), so that one a killed process leaves behind soon expires; but a
chunk whose host writes commit together (``grouped_writes``) may take longer than that on a slow
host. So while a chunk holds claims, a thread of its own renews them every
:attr:`ChunkClaims.RENEW_EVERY` seconds, and they last as long as the chunk does and no longer.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Collection
from datetime import timedelta
from typing import TYPE_CHECKING

from .store import CLAIM_TTL, ClaimTimeoutError

if TYPE_CHECKING:
    from .store import StateStore

__all__ = ["ChunkClaims"]

logger = logging.getLogger(__name__)


class ChunkClaims:
    """Claims of one holder (a chunk), taken as the chunk goes and given up by :meth:`release`.

    Thread-safe: the renewing thread and the chunk's thread share the set of held keys. A key
    whose claim another holder took meanwhile (renewals failed for a whole TTL: the store was
    unreachable) is no longer held, and :meth:`take_all` takes it again, waiting for that holder.
    """

    #: Seconds between renewals: a third of the claims' life, so two renewals may fail in a row.
    RENEW_EVERY = CLAIM_TTL.total_seconds() / 3
    #: How long each claim lasts from its last renewal.
    TTL = CLAIM_TTL
    _POLL = 0.05  # seconds between attempts while another holder has a claim

    def __init__(self, store: StateStore, tenant_id: str) -> None:
        self.store, self.tenant_id = store, tenant_id
        self.holder = f"{os.getpid()}:{uuid.uuid4().hex}"
        self._held: set[str] = set()
        self._lock = threading.Lock()
        # A renewal (an upsert) sent after release_keys deleted its keys would take them again.
        self._renewing = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._held

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._held)

    def take_all(self, keys: Collection[str], wait: timedelta) -> None:
        """Claim all of ``keys`` at once, or none: while another holder has one of them, give
        back those just taken and try again until ``wait`` has passed, then
        :class:`~.store.ClaimTimeoutError` (retryable). A chunk that takes its claims so never
        holds some of them while it waits for others; a deal claim it may hold meanwhile is waited
        for only by workers that hold nothing else (chunks take theirs without waiting), so no
        two holders wait for each other."""
        with self._lock:
            wanted = set(keys) - self._held
        deadline = time.monotonic() + wait.total_seconds()
        while wanted:
            got = self.store.take_claims(self.tenant_id, wanted, self.holder, self.TTL)
            if got == wanted:
                self._add(got)
                return
            if got:
                self.store.release_claims(self.tenant_id, got, self.holder)
            if time.monotonic() >= deadline:
                raise ClaimTimeoutError(self.tenant_id, min(wanted - got), wait)
            time.sleep(self._POLL)

    def take_free(self, keys: Collection[str]) -> set[str]:
        """Claim those of ``keys`` that no other holder has, in one statement, without waiting;
        return the ones held now (those held already included)."""
        with self._lock:
            held = set(keys) & self._held
        got = self.store.take_claims(self.tenant_id, set(keys) - held, self.holder, self.TTL)
        self._add(got)
        return held | got

    def release_keys(self, keys: Collection[str]) -> None:
        """Give up the claims on those of ``keys`` held (the others stay held)."""
        with self._renewing:
            with self._lock:
                mine = self._held & set(keys)
                self._held -= mine
            if mine:
                self.store.release_claims(self.tenant_id, mine, self.holder)

    def release(self) -> None:
        """Stop renewing and give up every claim held."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        with self._lock:
            held, self._held = self._held, set()
        if held:
            self.store.release_claims(self.tenant_id, held, self.holder)
        self._stop.clear()

    def _add(self, keys: set[str]) -> None:
        if not keys:
            return
        with self._lock:
            self._held |= keys
        if self._renewer is None:
            self._renewer = threading.Thread(target=self._renew, name=f"claims {self.holder}", daemon=True)
            self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.RENEW_EVERY):
            with self._renewing:
                with self._lock:
                    keys = set(self._held)
                try:
                    kept = self.store.take_claims(self.tenant_id, keys, self.holder, self.TTL)
                except Exception as exc:  # the store is out: try again next time, the claims last a while
                    logger.warning("could not renew %d store claims of a chunk (%s); trying again in %.0f s",
                                   len(keys), type(exc).__name__, self.RENEW_EVERY)
                    continue
                with self._lock:
                    self._held -= keys - kept
