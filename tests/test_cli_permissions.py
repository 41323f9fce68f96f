"""Every host command checks permission before it opens, enables or calls anything, and the
read-only commands never write the store or call HubSpot."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import click
import pytest
from click.testing import CliRunner

from ambac_hubspot_plugin.cli import main
from ambac_hubspot_plugin.host import MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS

from ._snapshot import host_settings_rows, store_file_rows
from .test_cli_conflicts import NOBODY, VIEWER, Site, site  # noqa: F401  # site is a fixture

# Commands that open no host act as no host user and so have no permission to check.
NO_HOST = {"demo", "sandbox"}
# Commands of the host process itself (whoever holds the host's files runs the host): they act
# as no tenant user; the routes `host serve` mounts check each caller's permission.
HOST_PROCESS = {"host init", "host serve", "host token", "worker"}
CONFLICT = "{conflict}"  # replaced by the site's open conflict id

# Every host command, with arguments for each of its variants and the permission each needs.
COMMANDS: dict[str, list[tuple[list[str], str]]] = {
    "check": [([], MANAGE_INTEGRATIONS)],
    "setup": [([], MANAGE_INTEGRATIONS), (["--portal-id", "999"], MANAGE_INTEGRATIONS)],
    "status": [([], VIEW_INTEGRATIONS)],
    "log": [([], VIEW_INTEGRATIONS)],
    "history": [([], VIEW_INTEGRATIONS)],
    "replay": [(["--list"], VIEW_INTEGRATIONS), (["--all"], MANAGE_INTEGRATIONS),
               (["1"], MANAGE_INTEGRATIONS)],
    "sync": [([], MANAGE_INTEGRATIONS), (["--backfill"], MANAGE_INTEGRATIONS)],
    "prune": [([], MANAGE_INTEGRATIONS), (["--dry-run"], MANAGE_INTEGRATIONS)],
    "conflicts list": [([], VIEW_INTEGRATIONS)],
    "conflicts show": [([CONFLICT], VIEW_INTEGRATIONS)],
    "conflicts resolve": [([CONFLICT, "hubspot"], MANAGE_INTEGRATIONS)],
    "companies list": [([], VIEW_INTEGRATIONS)],
    "companies show": [(["1"], VIEW_INTEGRATIONS)],
}
READ_ONLY: list[tuple[str, list[str]]] = [
    ("status", []), ("log", []), ("history", []), ("replay", ["--list"]),
    ("conflicts list", []), ("conflicts list", ["--all"]), ("conflicts show", [CONFLICT]),
    ("companies list", []),
]


def _all_commands(group: click.Group = main, prefix: str = "") -> Iterator[str]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _all_commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}"


def _conflict_id(site: Site) -> str:  # noqa: F811
    return str(site.json("list")["conflicts"][0]["id"])


def _run(site: Site, path: str, args: list[str], *extra: str) -> Any:  # noqa: F811
    base = ["--host-dir", str(site.host_dir), "--tenant", str(site.tenant)]
    return CliRunner().invoke(main, [*path.split(), *base, *args, *extra])


def _state(site: Site) -> tuple[Any, ...]:  # noqa: F811
    """Store rows (log, last connection check, runs, jobs, conflicts), the host's saved settings
    and the number of requests HubSpot received."""
    return (store_file_rows(site.host_dir / "plugins" / "hubspot" / "hubspot.sqlite3"),
            host_settings_rows(site.host_dir), len(site.hubspot.requests))


def test_the_table_names_every_host_command():
    """A command added without an entry here (and so without a refusal test) fails this test."""
    assert set(_all_commands()) - NO_HOST - HOST_PROCESS == set(COMMANDS)


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_a_refused_command_changes_nothing_and_calls_no_one(site, path):  # noqa: F811
    """Without the permission every variant exits 2 naming it, and the store (log, connection
    check, runs), the saved settings and HubSpot's request log stay exactly as they were."""
    conflict = _conflict_id(site)
    before = _state(site)
    for args, permission in COMMANDS[path]:
        args = [conflict if a == CONFLICT else a for a in args]
        users = [NOBODY] + ([VIEWER] if permission == MANAGE_INTEGRATIONS else [])
        for user in users:
            result = _run(site, path, args, "--as-user", user)
            assert result.exit_code == 2, (path, args, user, result.output)
            assert permission in result.output and user in result.output, result.output
            assert _state(site) == before, (path, args, user)


def test_read_only_commands_write_nothing_and_call_no_one(site):  # noqa: F811
    """status, log, history, replay --list and conflicts list/show, run again and again as the
    operator and as a viewer, leave every store row and HubSpot's request count as they were."""
    conflict = _conflict_id(site)
    before = _state(site)
    for _round in range(3):
        for path, args in READ_ONLY:
            args = [conflict if a == CONFLICT else a for a in args]
            for extra in ([], ["--as-user", VIEWER]):
                result = _run(site, path, args, "--json", *extra)
                assert result.exit_code == 0, (path, args, extra, result.output)
                assert _state(site) == before, (path, args, extra)


def test_the_log_is_not_filled_by_commands(site):  # noqa: F811
    """After many commands the log holds one plugin.enabled (from setting up), not one a command."""
    for _round in range(5):
        for path, args in (("status", []), ("log", []), ("history", []), ("check", []),
                           ("sync", [])):
            assert _run(site, path, args).exit_code == 0, path
    entries = _run(site, "log", ["--json", "--limit", "500"])
    whats = [e["what"] for e in json.loads(entries.stdout)["entries"]]
    assert whats.count("plugin.enabled") == 1, whats
