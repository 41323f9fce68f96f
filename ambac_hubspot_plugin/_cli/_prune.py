"""``ambac-hubspot prune``: remove the tenant's rows older than its retention settings now.

The periodic task prunes every enabled tenant on its own (see docs/store.md); this command is
for an operator who wants it done at once, or (``--dry-run``) to see how many rows would go.
It needs ``manage_integrations``, checked before the store is opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..host import MANAGE_INTEGRATIONS
from ._admin import _admin, _guard, _host_options
from ._output import _emit, _table

__all__ = ["prune_command"]

_LABELS = {"webhook_events": "processed webhook events", "integration_log": "integration log lines",
           "sync_runs": "finished sync runs", "dead_jobs": "dead jobs",
           "expired_claims": "expired claims (of stopped workers)"}


def _render(data: dict[str, Any]) -> None:
    title = "Would prune (dry run)" if data["dry_run"] else "Pruned"
    _table(title, ["table", "rows"], [[_LABELS.get(name, name), count]
                                      for name, count in data["rows"].items()], empty="Nothing.")
    if not data["complete"]:
        click.echo("stopped before the end; run it again to go on")


@click.command("prune")
@_host_options
@click.option("--dry-run", is_flag=True, help="Only count the rows that would go; change nothing.")
def prune_command(host_dir: Path | None, host_factory: str | None, tenant_id: str,
                  as_user: str | None, as_json: bool, dry_run: bool) -> None:
    """Remove processed webhook events, log lines, sync runs and dead jobs older than the
    tenant's retention settings (never what is still needed), in small chunks."""
    with _admin(host_dir, host_factory, tenant_id, as_user,
                permission=MANAGE_INTEGRATIONS) as (admin, user, _ctx):
        data = _guard(lambda: admin.prune(user, dry_run=dry_run))
    _emit(data, as_json, _render)
