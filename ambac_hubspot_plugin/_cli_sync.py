"""``ambac-hubspot sync``: run the inbound sync now, for one tenant of a host."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

EXIT_FAILED = 1
EXIT_USAGE = 2


@contextmanager
def host_context(host_dir: Path | None, host_factory: str | None) -> Iterator[Any]:
    """Open the host the command works on, started so enabled plugins are running.

    ``--host-factory module:function`` names a callable returning a started host object with
    ``plugin_manager`` and ``services(tenant_id)`` (a real host's adapter); otherwise
    ``--host-dir`` opens the reference host kept in that directory.
    """
    if host_factory:
        module, _, func = host_factory.partition(":")
        if not module or not func:
            raise click.UsageError("--host-factory must look like 'package.module:function'")
        host = getattr(importlib.import_module(module), func)()
    elif host_dir is not None:
        from .reference_host import ReferenceHost

        if not (host_dir / "host.sqlite3").exists():
            raise click.UsageError(f"{host_dir} holds no reference host (no host.sqlite3 in it)")
        host = ReferenceHost(host_dir)
        host.start()
    else:
        raise click.UsageError("give --host-dir (a reference host directory) or --host-factory")
    try:
        yield host
    finally:
        close = getattr(host, "close", None)
        if close is not None:
            close()


def runtime_of(host: Any, tenant: int) -> Any:
    """The HubSpot plugin's runtime in that host, checking the tenant has it enabled."""
    runtime = host.plugin_manager.get_plugin("hubspot.runtime").runtime
    if not runtime.is_enabled(tenant):
        click.echo(f"error: the HubSpot plugin is not enabled for tenant {tenant}", err=True)
        sys.exit(EXIT_USAGE)
    return runtime


host_options = [
    click.option("--host-dir", type=click.Path(path_type=Path, file_okay=False),
                 envvar="AMBAC_HOST_DIR", help="The reference host's data directory."),
    click.option("--host-factory", envvar="AMBAC_HOST_FACTORY",
                 help="module:function returning a started host (for a real host)."),
    click.option("--tenant", "tenant_id", type=int, required=True, help="The tenant id."),
]


def with_host_options(func: Any) -> Any:
    """Add --host-dir, --host-factory and --tenant to a command."""
    for option in reversed(host_options):
        func = option(func)
    return func


@click.command("sync")
@with_host_options
@click.option("--backfill", is_flag=True, help="Process every deal in a trigger stage, not just recent changes.")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="With --backfill: only deals modified since this date (YYYY-MM-DD, UTC).")
@click.option("--dry-run", is_flag=True, help="Say what would be created, updated and skipped; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def sync_command(host_dir: Path | None, host_factory: str | None, tenant_id: int, backfill: bool,
                 since: datetime | None, dry_run: bool, as_json: bool) -> None:
    """Run the inbound sync now: closed-won deals become orders.

    Exit code 0 when every deal was processed, 1 when some failed (see `ambac-hubspot log`) or
    the run stopped, 2 for bad usage or settings.
    """
    from .errors import HubSpotIntegrationError

    if since is not None and not backfill:
        raise click.UsageError("--since goes with --backfill")
    with host_context(host_dir, host_factory) as host:
        runtime = runtime_of(host, tenant_id)
        keep = dry_run or as_json
        try:
            with _progress(enabled=not as_json and sys.stderr.isatty()) as tick:
                result = runtime.run_sync(
                    tenant_id, backfill=backfill, dry_run=dry_run, keep_outcomes=keep, progress=tick,
                    since=since.replace(tzinfo=UTC) if since else None,
                )
        except HubSpotIntegrationError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_FAILED)
    data = {
        "kind": result.kind, "dry_run": result.dry_run, "run_id": result.run_id,
        "created": result.created, "updated": result.updated, "unchanged": result.unchanged,
        "skipped": result.skipped, "failed": result.failed,
        "outcomes": [{"deal_id": o.deal_id, "action": o.action, "reason": o.reason,
                      "order_id": o.order_id, "fields": list(o.fields)} for o in result.outcomes],
    }
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        _print(data)
    sys.exit(EXIT_FAILED if result.failed else 0)


@contextmanager
def _progress(*, enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    counts = {"created": 0, "updated": 0, "unchanged": 0, "skipped": 0, "failed": 0}
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=None),
                  TextColumn("{task.completed} deals"), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("syncing", total=None)

        def tick(outcome: Any) -> None:
            counts[outcome.action] += 1
            bar.update(task, advance=1, description=" ".join(f"{k} {v}" for k, v in counts.items() if v))

        yield tick


def _print(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if data["dry_run"]:
        table = Table(title="Dry run: what the sync would do (nothing was written)", title_justify="left")
        for column in ("deal", "action", "why"):
            table.add_column(column)
        for o in data["outcomes"]:
            if o["action"] != "skipped" or len(data["outcomes"]) <= 50:
                table.add_row(o["deal_id"], o["action"], o["reason"])
        console.print(table)
    summary = ", ".join(f"{data[k]} {k}" for k in ("created", "updated", "unchanged", "skipped", "failed"))
    verb = "would be" if data["dry_run"] else "were"
    console.print(f"{data['kind']} sync: deals {verb} {summary}" + (f" (run {data['run_id']})" if data["run_id"] else ""))
    if data["failed"]:
        console.print("[red]Some deals failed; `ambac-hubspot log --level error` says which and why.")
