"""Where a tenant's store may live, and that it cannot change while the plugin is enabled."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ambac_hubspot_plugin.cli import main
from ambac_hubspot_plugin.errors import ConfigError, StoreError
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

from ._world import plugin_settings


@pytest.fixture(scope="module")
def hubspot() -> Iterator[Sandbox]:
    """One sandbox portal for the module."""
    with Sandbox(rate_limits=RateLimits.unlimited()) as hs:
        yield hs


@pytest.fixture
def host(tmp_path: Path) -> Iterator[ReferenceHost]:
    """A reference host in a temp dir."""
    with ReferenceHost(tmp_path / "host") as ref_host:
        yield ref_host


def _data_dir(host: ReferenceHost, tenant: int) -> Path:
    return host.services(tenant).plugin_data_dir("hubspot")


def _tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]


def test_a_store_outside_the_data_dir_is_refused_unless_stated(host, hubspot, tmp_path):
    """store_url through '..' out of the plugin's data dir names store_url; the opt-in allows it."""
    tenant = host.create_tenant("Acme")
    outside = f"sqlite:///{_data_dir(host, tenant)}/../../elsewhere.sqlite3"
    with pytest.raises(ConfigError) as info:
        host.enable_plugin(tenant, "hubspot", plugin_settings(hubspot, store_url=outside))
    assert "outside the plugin's data directory" in info.value.problems["store_url"]
    assert "store_outside_data_dir" in info.value.problems["store_url"]
    assert not host.is_plugin_enabled(tenant, "hubspot")
    host.enable_plugin(tenant, "hubspot", plugin_settings(hubspot, store_url=outside,
                                                          store_outside_data_dir=True))
    assert host.is_plugin_enabled(tenant, "hubspot")


def test_a_symlink_out_of_the_data_dir_counts_as_outside(host, hubspot, tmp_path):
    """A link inside the data dir to a file elsewhere is judged by where it points."""
    tenant = host.create_tenant("Acme")
    link = _data_dir(host, tenant) / "store.sqlite3"
    link.symlink_to(tmp_path / "target.sqlite3")
    with pytest.raises(ConfigError) as info:
        host.enable_plugin(tenant, "hubspot", plugin_settings(hubspot, store_url=f"sqlite:///{link}"))
    assert "store_url" in info.value.problems


def test_the_hosts_own_database_is_refused_even_when_outside_paths_are_allowed(host, hubspot):
    """A SQLite file holding another application's tables (the host's) is never the store."""
    tenant = host.create_tenant("Acme")
    host_db = host.data_dir / "host.sqlite3"
    before = _tables(host_db)
    settings = plugin_settings(hubspot, store_url=f"sqlite:///{host_db}", store_outside_data_dir=True)
    with pytest.raises(StoreError) as info:
        host.enable_plugin(tenant, "hubspot", settings)
    assert info.value.setting == "store_url" and "not the plugin's" in str(info.value)
    assert _tables(host_db) == before, "no plugin table was created in the host's database"


def test_the_store_cannot_change_while_enabled_even_from_another_process(host, hubspot, tmp_path):
    """A second host process (or the CLI's setup) cannot switch an enabled tenant to another store."""
    tenant = host.create_tenant("Acme")
    settings = plugin_settings(hubspot)
    host.enable_plugin(tenant, "hubspot", settings)
    other = f"sqlite:///{_data_dir(host, tenant) / 'other.sqlite3'}"
    # A second host on the same data dir: the tenant is not loaded in this one.
    with ReferenceHost(host.data_dir) as second, pytest.raises(ConfigError) as info:
        second.enable_plugin(tenant, "hubspot", {**settings, "store_url": other})
    assert "disable the plugin first" in info.value.problems["store_url"]
    assert "store_url" not in host.plugin_settings(tenant, "hubspot"), "nothing was saved"

    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps({"store_url": other}))
    result = CliRunner().invoke(main, ["setup", "--host-dir", str(host.data_dir), "--tenant",
                                       str(tenant), "--settings", str(settings_file)])
    assert result.exit_code == 2 and "disable the plugin first" in result.output
    assert not Path(other.removeprefix("sqlite:///")).exists(), "no empty store was created"

    host.disable_plugin(tenant, "hubspot")
    host.enable_plugin(tenant, "hubspot", {**settings, "store_url": other})
    assert host.plugin_settings(tenant, "hubspot")["store_url"] == other


def test_the_same_store_spelled_another_way_is_not_a_change(host, hubspot):
    """Re-enabling with the same file through '..', or the same PostgreSQL database under
    another scheme spelling or password, is allowed; another file is refused."""
    from ambac_hubspot_plugin._store_place import _identity

    tenant = host.create_tenant("Acme")
    data = _data_dir(host, tenant)
    settings = {**plugin_settings(hubspot), "store_url": f"sqlite:///{data / 'store.sqlite3'}"}
    host.enable_plugin(tenant, "hubspot", settings)
    (data / "x").mkdir()
    host.enable_plugin(tenant, "hubspot", {**settings, "store_url": f"sqlite:///{data / 'x' / '..' / 'store.sqlite3'}"})
    with pytest.raises(ConfigError):
        host.enable_plugin(tenant, "hubspot", {**settings, "store_url": f"sqlite:///{data / 'other.sqlite3'}"})
    assert _identity("postgres://u:one@db:5432/app", None) == _identity("postgresql+psycopg://u:two@db:5432/app", None)
    assert _identity("postgresql://u@db/app?password=x", None) == _identity("postgresql://u@db/app", None)
    assert _identity("postgresql://u@db/app", None) == _identity("postgresql://u@db:5432/app", None)
    assert _identity("postgresql://u@db/app", None) != _identity("postgresql://u@db/other", None)


def test_moving_the_whole_host_directory_keeps_the_store_binding(hubspot, tmp_path):
    """A restored backup or a new server puts the same files at another path: the default
    store (inside the data directory) is the same store, so the settings can still change;
    a binding written by an older version (the absolute path) still matches the same file."""
    import shutil

    with ReferenceHost(tmp_path / "a") as host:
        tenant = host.create_tenant("Acme")
        host.enable_plugin(tenant, "hubspot", plugin_settings(hubspot))
        binding = next(_data_dir(host, tenant).glob("tenant-*.store.json"))
        assert "{data_dir}" in json.loads(binding.read_text())["store"]
    shutil.move(tmp_path / "a", tmp_path / "b")
    with ReferenceHost(tmp_path / "b") as host:
        host.change_settings(tenant, "hubspot", {**plugin_settings(hubspot), "sync_interval_seconds": 600})
        data = _data_dir(host, tenant)
        legacy = {"store": f"sqlite:///{(data / 'hubspot.sqlite3').resolve()}"}
        binding = next(data.glob("tenant-*.store.json"))
        binding.write_text(json.dumps(legacy))
        host.change_settings(tenant, "hubspot", {**plugin_settings(hubspot), "sync_interval_seconds": 900})
        assert "{data_dir}" in json.loads(binding.read_text())["store"], "rewritten in the movable form"
        with pytest.raises(ConfigError):
            host.change_settings(tenant, "hubspot", {**plugin_settings(hubspot),
                                                     "store_url": f"sqlite:///{data / 'other.sqlite3'}"})
