"""``ambac-hubspot``: commands for an operator on the host machine.

Every command has ``--help``; commands that report take ``--json`` for scripts. Exit codes:
0 success, 1 the operation failed, 2 bad usage, bad settings or permission denied.
Commands that work on a host share one set of options (``_cli._admin._host_options``); see
docs/cli.md for each command.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

__all__ = ["main"]


class _Commands(click.Group):
    """The command group, refusing arguments that are not text before any command runs."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        _check_text(args)
        return super().parse_args(ctx, args)


def _check_text(args: Sequence[str]) -> None:
    """Refuse an argument holding bytes that are not UTF-8 (Python keeps them as lone
    surrogates): typed in a Latin-1 terminal, it would fail deep inside a command, after it
    had begun writing."""
    for n, arg in enumerate(args, 1):
        if any("\udc80" <= ch <= "\udcff" for ch in arg):
            shown = arg.encode("utf-8", "surrogateescape").decode("latin-1")[:40]
            raise click.UsageError(f"argument {n} ({shown!r}) is not UTF-8 text; set the terminal to "
                                   "UTF-8 (LANG=C.UTF-8, or your language's .UTF-8 locale) and type it again")


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ambac-hubspot-plugin")
def main() -> None:
    """Operate the HubSpot integration of Ambac Tracker."""
    # A terminal in another encoding (ISO-8859-1) cannot show every name HubSpot holds ("€"):
    # such a character prints as "?" rather than ending the command with a traceback.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", None) == "strict":
            reconfigure(errors="replace")


def _console() -> Any:
    from rich.console import Console

    return Console()


@main.command()
@click.option("--deals", "seed_deals", type=click.IntRange(min=0), default=60, show_default=True,
              help="How many deals to seed the sandbox portal with.")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Keep the demo's host and store files here instead of a temporary folder.")
@click.option("--screenshots", type=click.Path(path_type=Path, file_okay=False),
              help="Then save a PNG of every admin page at 375 and 1280 px here (needs selenium and Chromium).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def demo(seed_deals: int, data_dir: Path | None, screenshots: Path | None, as_json: bool) -> None:
    """Show the integration end to end against a seeded HubSpot sandbox.

    Starts the HubSpot sandbox on loopback and seeds a realistic portal; builds the reference
    host, which discovers the plugin through its entry point; enables the plugin for a tenant
    through the hooks; runs a sync; moves one open deal to closed won (as a HubSpot user would)
    and syncs again; then prints the orders, companies and contacts and the sync history.
    With --screenshots, it then stages a failed deal, a held conflict and a dead letter and
    photographs the admin pages with headless Chromium.
    """
    from ._demo import print_demo, run_demo

    if screenshots is not None:
        from ._demo_pages import browser_missing

        missing = browser_missing()
        if missing:
            raise click.ClickException(f"--screenshots needs {missing}.")
    console = _console()
    result = run_demo(seed_deals=seed_deals, data_dir=data_dir, screenshots=screenshots,
                      say=None if as_json else console.print)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        print_demo(console, result)


def _add_commands() -> None:
    # Command modules are imported when the CLI runs, never by the plugin itself. Every command
    # that works on a host opens it the same way: _cli._admin's --host-dir/--host-factory options.
    from ._cli._admin import register
    from ._cli._companies import companies_group
    from ._cli._conflicts import conflicts_group
    from ._cli._host import host_group, worker_command
    from ._cli._prune import prune_command
    from ._cli._sync import sync_command
    from .sandbox._cli import sandbox_command

    main.add_command(sandbox_command, name="sandbox")
    main.add_command(host_group, name="host")  # host init, host token, host serve
    main.add_command(worker_command, name="worker")
    main.add_command(sync_command, name="sync")
    main.add_command(conflicts_group, name="conflicts")
    main.add_command(companies_group, name="companies")
    main.add_command(prune_command, name="prune")
    register(main)  # check, setup, status, log, history, replay


_add_commands()
