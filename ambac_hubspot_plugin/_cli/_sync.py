"""``ambac-hubspot sync``: run the inbound sync now, for one tenant of a host.

The host is opened like every other command's (:func:`._admin._host_options`) and the
sync goes through :meth:`~ambac_hubspot_plugin.admin.Admin.run_sync`, so ``--as-user`` needs
``manage_integrations``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..host import MANAGE_INTEGRATIONS
from ._admin import EXIT_FAILED, _admin, _guard, _host_options
from ._output import _console, _emit, _table

if TYPE_CHECKING:
    from .._inbound_records import Outcome

__all__ = ["sync_command"]

_ACTIONS = ("created", "updated", "unchanged", "skipped", "failed")


@click.command("sync")
@_host_options
@click.option("--backfill", is_flag=True,
              help="Process every deal in a trigger stage, not just recent changes.")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="With --backfill: only deals modified since this date (YYYY-MM-DD, UTC).")
@click.option("--dry-run", is_flag=True,
              help="Say what would be created, updated and skipped; write nothing.")
def sync_command(host_dir: Path | None, host_factory: str | None, tenant_id: str,
                 as_user: str | None, as_json: bool, backfill: bool, since: datetime | None,
                 dry_run: bool) -> None:
    """Run the inbound sync now: closed-won deals become orders.

    Exit code 0 when every deal was processed, 1 when some failed (see `ambac-hubspot log`) or
    the run stopped, 2 for bad usage or settings, or without the manage_integrations permission.
    """
    from .._views import outcome_json

    if since is not None and not backfill:
        raise click.UsageError("--since goes with --backfill")
    # Outcomes are only kept when shown: a backfill of a big portal would otherwise hold them all.
    keep = dry_run or as_json
    outcomes: list[Outcome] = []
    with _admin(host_dir, host_factory, tenant_id, as_user,
                permission=MANAGE_INTEGRATIONS) as (admin, user, _ctx), \
            _progress(enabled=not as_json and sys.stderr.isatty()) as tick:

        def seen(outcome: Outcome) -> None:
            if keep:
                outcomes.append(outcome)
            if tick is not None:
                tick(outcome)

        data = _guard(lambda: admin.run_sync(
            user, backfill=backfill, dry_run=dry_run, progress=seen,
            since=since.replace(tzinfo=UTC) if since else None))
        data["outcomes"] = admin._clean([outcome_json(o) for o in outcomes])
    _emit(data, as_json, _render)
    sys.exit(EXIT_FAILED if data["failed"] else 0)


@contextmanager
def _progress(*, enabled: bool) -> Iterator[Callable[[Outcome], None] | None]:
    """A transient rich progress bar counting outcomes by action (None when not on a terminal)."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    counts = dict.fromkeys(_ACTIONS, 0)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=None),
                  TextColumn("{task.completed} deals"), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("syncing", total=None)

        def tick(outcome: Outcome) -> None:
            counts[outcome.action] += 1
            bar.update(task, advance=1,
                       description=" ".join(f"{k} {v}" for k, v in counts.items() if v))

        yield tick


def _render(data: dict[str, Any]) -> None:
    console = _console()
    if data["dry_run"]:
        # A portal's many out-of-stage deals would bury the ones that matter.
        _table("Dry run: what the sync would do (nothing was written)", ["deal", "action", "why"],
               [[o["deal_id"], o["action"], o["reason"]] for o in data["outcomes"]
                if o["action"] != "skipped" or len(data["outcomes"]) <= 50],
               empty="Dry run: no deal to create or update (nothing was written).")
    summary = ", ".join(f"{data[k]} {k}" for k in _ACTIONS)
    verb = "would be" if data["dry_run"] else "were"
    console.print(f"{data['kind']} sync: deals {verb} {summary}"
                  + (f" (run {data['run_id']})" if data["run_id"] else ""))
    if data["failed"]:
        console.print("Some deals failed; "
                      "`ambac-hubspot log --level error` says which and why.", style="red")
