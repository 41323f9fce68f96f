"""Filters a database cannot hold are 400s (routes) and exit 2 (CLI), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ambac_hubspot_plugin.cli import main
from ambac_hubspot_plugin.errors import ConfigError
from ambac_hubspot_plugin.host import MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS
from ambac_hubspot_plugin.sandbox import Sandbox

from ._store_support import store_url  # noqa: F401  # a fixture: SQLite and PostgreSQL
from ._world import open_world
from .test_admin import World, world_settings

HUGE = 2**70


@pytest.fixture
def world(tmp_path: Path, store_url: str) -> Iterator[World]:  # noqa: F811  # the fixture above
    """The plugin enabled on a store of each kind, with an admin user."""
    def settings(hubspot: Sandbox) -> dict:
        return world_settings(hubspot, store_url=store_url, store_outside_data_dir=True)

    with open_world(tmp_path, World, settings=settings, tenant_name="Acme", check_enabled=False,
                    close_runtime=True) as world:
        world.admin_user = world.host.create_user(world.tenant, "admin@acme.example")
        for permission in (MANAGE_INTEGRATIONS, VIEW_INTEGRATIONS):
            world.host.grant(world.admin_user, permission)
        yield world


@pytest.mark.parametrize(("path", "field"), [
    ("log?record=a%00b", "record"), ("log?what=x%00", "what"), ("history?kind=%00", "kind"),
    (f"history?before={2**64}", "before"),
    ("dead-letters?kind=a%00", "kind"), (f"log?record={'r' * 201}", "record"),
])
def test_routes_refuse_filters_the_database_cannot_hold(world, path, field):
    """A NUL byte or an absurd length in a query filter is a 400 naming the parameter."""
    status, body = world.http("GET", path, world.admin_user)
    assert status == 400, body
    assert field in body["problems"]


@pytest.mark.parametrize("call", [
    lambda a, u: a.log(u, record="deal:\udc80"), lambda a, u: a.log(u, what="\x00"),
    lambda a, u: a.log(u, before=HUGE), lambda a, u: a.history(u, kind="\udcff"),
    lambda a, u: a.history(u, before=HUGE),
    lambda a, u: a.dead_letters(u, kind="x" * 500), lambda a, u: a.replay(u, HUGE),
    lambda a, u: a.replay_all(u, "\x00"), lambda a, u: a.resolve_conflict(u, HUGE, "hubspot"),
    lambda a, u: a.preview_order(u, "1\x00"),
])
def test_the_admin_api_refuses_values_the_database_cannot_hold(world, call):
    """Lone surrogates, NULs, overlong text and ids beyond 64 bits are ConfigErrors, not crashes."""
    with pytest.raises(ConfigError):
        call(world.admin, world.admin_user)


@pytest.mark.parametrize("args", [
    ["log", "--record", "a\x00b"], ["log", "--what", "\udc80"], ["log", "--before", str(HUGE)],
    ["replay", str(HUGE)], ["conflicts", "show", str(HUGE)],
])
def test_cli_filters_the_database_cannot_hold_exit_2(world, args):
    """The CLI refuses the same values with exit code 2 and names the parameter (a lone
    surrogate, which only bytes that are not UTF-8 give an argument, before any command)."""
    world.runtime.close()
    result = CliRunner().invoke(main, [*args, "--host-dir", str(world.host.data_dir),
                                       "--tenant", str(world.tenant)])
    assert result.exit_code == 2, (result.output, result.exception)
    assert ("not UTF-8" if "\udc80" in args else "Invalid") in result.output


def test_good_filters_still_work(world):
    """Ordinary filters pass the check and reach the store."""
    status, body = world.http("GET", "log?record=deal:1&what=plugin.enabled&before=99", world.admin_user)
    assert status == 200 and json.dumps(body)
