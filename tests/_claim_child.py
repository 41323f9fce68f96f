"""A worker process of ``tests/test_claims.py``: links one HubSpot contact for one deal.

Each child opens the shared store and the shared reference host data dir, waits on a barrier
for the other, and resolves the same new HubSpot contact with :class:`RecordLinker`. Its host
takes half a second to answer the first email search, so without a cross-process claim every
child would have found no user before any creates one, and each would create a user.
"""

from __future__ import annotations

import time
import types
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ambac_hubspot_plugin._linking import Chunk, RecordLinker
from ambac_hubspot_plugin.client import Contact as HubSpotContact
from ambac_hubspot_plugin.host import Contact
from ambac_hubspot_plugin.mapping import DefaultMapping
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.store import open_store


class _SlowSearch:
    """The tenant's host services; the first email search answers after half a second."""

    def __init__(self, services: Any) -> None:
        self._services = services
        self._first = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._services, name)

    def find_contacts_by_email(self, email: str) -> Sequence[Contact]:
        found = self._services.find_contacts_by_email(email)
        if self._first:
            self._first = False
            time.sleep(0.5)  # the other child searches meanwhile, unless the claim stops it
        return found


def link_contact(store_url: str, data_dir: str, tenant_id: int, deal_id: str, contact_id: str,
                 email: str, barrier: Any) -> None:
    """Resolve and link HubSpot contact ``contact_id`` (with ``email``) for deal ``deal_id``."""
    store = open_store(store_url)
    try:
        with ReferenceHost(Path(data_dir), load_entrypoints=False) as host:
            parts = types.SimpleNamespace(
                tenant_id=tenant_id, portal_id="p1", store=store, client=None,
                mapping=DefaultMapping(),
                host=_SlowSearch(host.services(tenant_id)))
            linker = RecordLinker(parts)  # type: ignore[arg-type]  # the parts it reads
            record = HubSpotContact(id=contact_id, updated_at=datetime.now(UTC),
                                    properties={"email": email, "firstname": "Ann",
                                                "lastname": "Lee"})
            chunk = Chunk(contacts_of={deal_id: [contact_id]}, contacts={contact_id: record})
            barrier.wait(60)
            try:
                host_ids = linker.resolve_contacts([contact_id], chunk, None, dry_run=False)
                assert len(host_ids) == 1, host_ids
                linker.write_pending()
            finally:
                linker.release_claims()
    finally:
        store.close()
