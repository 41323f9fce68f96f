"""``ambac-hubspot conflicts``: list, show and resolve a tenant's sync conflicts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ._cli_sync import EXIT_FAILED, host_context, runtime_of, with_host_options

__all__ = ["conflicts_group"]


def _as_dict(record: Any) -> dict[str, Any]:
    import attrs

    data = attrs.asdict(record)
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in data.items()}


def _echo(data: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    rows = data if isinstance(data, list) else [data]
    for row in rows:
        click.echo(f"#{row['id']} {row['object_type']} {row['host_id']} (HubSpot {row['hubspot_type']} "
                   f"{row['hubspot_id']}) field {row['field']}: HubSpot {row['hubspot_value']!r} vs "
                   f"Ambac {row['host_value']!r} (last synced {row['last_synced']!r}); "
                   f"{row['strategy']} -> {row['decision']}, {row['status']}"
                   + (f", resolved {row['resolution']} = {row['resolved_value']!r} by {row['decided_by']}"
                      if row["resolution"] else ""))


@click.group("conflicts")
def conflicts_group() -> None:
    """List, show and resolve conflicts (a field changed in HubSpot and in Ambac Tracker)."""


@conflicts_group.command("list")
@with_host_options
@click.option("--all", "show_all", is_flag=True, help="The whole audit trail, not only open conflicts.")
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(host_dir: Path | None, host_factory: str | None, tenant_id: int, show_all: bool,
                 limit: int, as_json: bool) -> None:
    """List open conflicts (or, with --all, every recorded one), newest first."""
    with host_context(host_dir, host_factory) as host:
        records = runtime_of(host, tenant_id).list_conflicts(tenant_id, status=None if show_all else "open",
                                                              limit=limit)
        _echo([_as_dict(r) for r in records], as_json)


@conflicts_group.command("show")
@with_host_options
@click.argument("conflict_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_command(host_dir: Path | None, host_factory: str | None, tenant_id: int, conflict_id: int,
                 as_json: bool) -> None:
    """Show one conflict with both values, both timestamps and its decision."""
    from .errors import ConfigError

    with host_context(host_dir, host_factory) as host:
        try:
            record = runtime_of(host, tenant_id).get_conflict(tenant_id, conflict_id)
        except ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_FAILED)
        _echo(_as_dict(record), as_json)


@conflicts_group.command("resolve")
@with_host_options
@click.argument("conflict_id", type=int)
@click.argument("choice", type=click.Choice(["hubspot", "ambac", "value"], case_sensitive=False))
@click.option("--value", help="With CHOICE 'value': the value to set on both sides.")
@click.option("--by", "decided_by", help="Who decides (recorded in the audit trail).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def resolve_command(host_dir: Path | None, host_factory: str | None, tenant_id: int, conflict_id: int,
                    choice: str, value: str | None, decided_by: str | None, as_json: bool) -> None:
    """Resolve an open conflict: HubSpot's value, Ambac's value, or a typed --value; both sides get it."""
    from .errors import HubSpotIntegrationError

    with host_context(host_dir, host_factory) as host:
        try:
            record = runtime_of(host, tenant_id).resolve_conflict(
                tenant_id, conflict_id, choice, value=value, decided_by=decided_by or "cli")
        except HubSpotIntegrationError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_FAILED)
        _echo(_as_dict(record), as_json)
