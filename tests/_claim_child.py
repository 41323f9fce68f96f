"""A worker process of ``tests/test_claims.py``: links one HubSpot contact for one deal.

Each child opens the shared store and the shared reference host data dir, and resolves the
same new HubSpot contact with :class:`RecordLinker`. Its host waits on a barrier right after
the first email search, so every child has found no user before any creates one: without a
cross-process claim, each would create a user.
"""

from __future__ import annotations

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


class _SearchedTogether:
    """The tenant's host services; the first email search waits until every child has searched."""

    def __init__(self, services: Any, barrier: Any) -> None:
        self._services = services
        self._barrier = barrier

    def __getattr__(self, name: str) -> Any:
        return getattr(self._services, name)

    def find_contacts_by_email(self, email: str) -> Sequence[Contact]:
        found = self._services.find_contacts_by_email(email)
        if self._barrier is not None:
            barrier, self._barrier = self._barrier, None
            barrier.wait(60)
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
                host=_SearchedTogether(host.services(tenant_id), barrier))
            linker = RecordLinker(parts)  # type: ignore[arg-type]  # the parts it reads
            record = HubSpotContact(id=contact_id, updated_at=datetime.now(UTC),
                                    properties={"email": email, "firstname": "Ann",
                                                "lastname": "Lee"})
            chunk = Chunk(contacts_of={deal_id: [contact_id]}, contacts={contact_id: record})
            host_ids = linker.resolve_contacts([contact_id], chunk, None, dry_run=False)
            assert len(host_ids) == 1, host_ids
            linker.write_pending()
    finally:
        store.close()
