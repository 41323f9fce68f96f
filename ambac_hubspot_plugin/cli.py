"""``ambac-hubspot``: commands for an operator on the host machine.

Every command has ``--help``; commands that report take ``--json`` for scripts. Exit codes:
0 success, 1 the operation failed, 2 bad usage or bad settings.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

__all__ = ["main"]

EXIT_FAILED = 1
EXIT_USAGE = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ambac-hubspot-plugin")
def main() -> None:
    """Operate the HubSpot integration of Ambac Tracker."""


def _console() -> Any:
    from rich.console import Console

    return Console()


@main.command()
@click.option("--deals", "seed_deals", default=60, show_default=True,
              help="How many deals to seed the sandbox portal with.")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Keep the demo's host and store files here instead of a temporary folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def demo(seed_deals: int, data_dir: Path | None, as_json: bool) -> None:
    """Show the integration end to end against a seeded HubSpot sandbox.

    Starts the HubSpot sandbox on loopback and seeds a realistic portal; builds the reference
    host, which discovers the plugin through its entry point; enables the plugin for a tenant
    through the hooks; runs a sync; moves one open deal to closed won (as a HubSpot user would)
    and syncs again; then prints the orders, companies and contacts and the sync history.
    """
    from ._demo import print_demo, run_demo

    console = _console()
    result = run_demo(seed_deals=seed_deals, data_dir=data_dir,
                      say=None if as_json else console.print)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        print_demo(console, result)


@main.command()
@click.option("--store-url", required=True, envvar="AMBAC_HUBSPOT_STORE_URL",
              help="The plugin's store (sqlite:///path or postgresql+psycopg://...).")
@click.option("--tenant", "tenant_id", type=int, required=True, help="The tenant id.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def status(store_url: str, tenant_id: int, as_json: bool) -> None:
    """Show a tenant's queue depths, recent sync runs and recent log entries."""
    from ._runtime import store_status
    from .errors import StoreError
    from .store import open_store

    try:
        store = open_store(store_url)
    except StoreError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    try:
        data = store_status(store, tenant_id)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        _console().print_json(json.dumps(data))


def _add_commands() -> None:
    # Command modules are imported when the CLI runs, never by the plugin itself.
    from ._cli_sync import sync_command
    from .sandbox._cli import sandbox_command

    main.add_command(sandbox_command, name="sandbox")
    main.add_command(sync_command, name="sync")


_add_commands()
from ._cli_admin import register as _register_admin  # noqa: E402  # check, setup, status, log, history, replay

_register_admin(main)
