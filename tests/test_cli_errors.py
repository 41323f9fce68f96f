"""CLI errors a person meets first: one clear line and the documented exit code, never a traceback."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ambac_hubspot_plugin.cli import main
from ambac_hubspot_plugin.reference_host import ReferenceHost
from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox

from .test_admin import world_settings


def _invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def bare_host(tmp_path: Path) -> Iterator[tuple[Sandbox, Path, int]]:
    """A sandbox and a reference host with one tenant and the plugin not yet set up."""
    with Sandbox(rate_limits=RateLimits.unlimited()) as hubspot:
        with ReferenceHost(tmp_path / "host") as host:
            tenant = host.create_tenant("Acme")
        yield hubspot, tmp_path / "host", tenant


def test_a_postgresql_store_without_its_driver_says_to_install_the_postgres_extra(tmp_path, monkeypatch):
    """With psycopg not importable, a PostgreSQL store_url exits 2 naming the [postgres] extra."""
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what an install without the extra has
    result = _invoke("status", "--store-url", "postgresql://alice:s3cr3t@127.0.0.1:5432/test",
                     "--tenant", "1")
    assert result.exit_code == 2, result.output
    assert "[postgres] extra" in result.output and "pip install 'psycopg[binary]>=3.1'" in result.output
    assert "s3cr3t" not in result.output and "Traceback" not in result.output


def test_setup_with_an_unreachable_store_exits_2_and_saves_nothing(bare_host, tmp_path):
    """setup whose store_url cannot be reached is a settings error (2): nothing saved or enabled."""
    hubspot, host_dir, tenant = bare_host
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({**world_settings(hubspot),
                                    "store_url": "postgresql://alice:s3cr3t@127.0.0.1:1/hubspot"}))
    result = _invoke("setup", "--host-dir", str(host_dir), "--tenant", str(tenant),
                     "--settings", str(settings))
    assert result.exit_code == 2, result.output
    assert "store_url" in result.output and "s3cr3t" not in result.output
    with ReferenceHost(host_dir, load_entrypoints=False) as host:
        assert host.plugin_settings(tenant, "hubspot") is None
        assert not host.is_plugin_enabled(tenant, "hubspot")


def test_a_refused_token_is_said_once(bare_host):
    """The check names HubSpot's refusal once, not wrapped in a second copy of itself."""
    hubspot, host_dir, tenant = bare_host
    base = ["--host-dir", str(host_dir), "--tenant", str(tenant)]
    assert _invoke("setup", *base, "--portal-id", str(hubspot.portal_id), "--token", hubspot.access_token,
                   "--api-base-url", hubspot.base_url, "--local-sandbox").exit_code == 0
    result = _invoke("setup", *base, "--token", "pat-na1-revoked", "--json")
    assert result.exit_code == 1, result.output
    token = json.loads(result.stdout)["checks"][0]
    assert token["name"] == "token" and token["status"] == "failed"
    assert token["summary"].count("refused the credentials") == 1, token["summary"]


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_sandbox_refuses_a_port_out_of_range_in_one_line(port):
    """sandbox --port outside 0-65535 exits 2 with one error line, not a traceback."""
    result = CliRunner().invoke(main, ["sandbox", "--port", port])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "--port" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_sandbox_on_a_port_in_use_exits_2_in_one_line():
    """sandbox on a port another process listens on exits 2 with one line naming host and port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = CliRunner().invoke(main, ["sandbox", "--port", port])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and f"127.0.0.1:{port}" in result.output
    assert not isinstance(result.exception, OSError)


@pytest.mark.parametrize("option", ["--seed-companies", "--seed-contacts", "--seed-deals"])
def test_sandbox_refuses_negative_seed_counts(option):
    """A negative seed count is refused (exit 2, naming the option) instead of seeding nothing."""
    result = CliRunner().invoke(main, ["sandbox", option, "-3"])
    assert result.exit_code == 2 and option in result.output


def test_demo_refuses_a_negative_deal_count():
    """demo --deals -1 is refused (exit 2, naming the option) before anything starts."""
    result = CliRunner().invoke(main, ["demo", "--deals", "-1"])
    assert result.exit_code == 2 and "--deals" in result.output


def test_the_sandbox_api_refuses_negative_seed_counts():
    """Sandbox.seed with a negative count is a programming error (ValueError), not an empty seed."""
    with Sandbox() as hubspot, pytest.raises(ValueError, match="negative"):
        hubspot.seed(deals=-1)


def test_the_driver_the_message_names_is_the_one_the_postgres_extra_installs():
    """The missing-driver message names exactly the requirement of setup.cfg's [postgres] extra."""
    import configparser
    from pathlib import Path

    from ambac_hubspot_plugin.store._engine import _PG_DRIVER

    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    assert config["options.extras_require"]["postgres"].split() == [_PG_DRIVER]


def test_setup_with_a_token_ending_in_a_line_break_exits_2_naming_it_never_printing_it(bare_host):
    """`--token "$(cat token.txt)"` of a CRLF file ends in CR: a settings error naming the
    field, not a traceback from the HTTP library quoting the token."""
    hubspot, host_dir, tenant = bare_host
    result = _invoke("setup", "--host-dir", str(host_dir), "--tenant", str(tenant),
                     "--portal-id", str(hubspot.portal_id), "--api-base-url", hubspot.base_url,
                     "--local-sandbox", "--token", hubspot.access_token + "\r", "--json")
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "access_token" in result.output and hubspot.access_token not in result.output
    with ReferenceHost(host_dir) as host:
        assert host.plugin_settings(tenant, "hubspot") is None


_CLI = [sys.executable, "-c", "import sys; from ambac_hubspot_plugin.cli import main; main(prog_name='ambac-hubspot')"]


def test_a_terminal_in_another_encoding_prints_what_it_cannot_show_as_a_question_mark(tmp_path):
    """A de_DE.ISO-8859-1 terminal and a company named with "€": the table prints, no traceback."""
    import os
    import subprocess

    host_dir = tmp_path / "host"
    with Sandbox(rate_limits=RateLimits.unlimited()) as hubspot, ReferenceHost(host_dir) as host:
        tenant = host.create_tenant("Acme")
        host.enable_plugin(tenant, "hubspot", {**world_settings(hubspot), "run_background_worker": False})
        company = hubspot.add_object("companies", {"name": "Euro Parts \u20ac GmbH", "domain": "x.example"})
        hubspot.add_object("deals", {"dealname": "Brackets", "pipeline": "default", "dealstage": "closedwon"},
                           {"companies": [company]})
        runtime = host.plugin_manager.get_plugin("hubspot.runtime").runtime
        runtime.run_sync(tenant)
        runtime.close()
    result = subprocess.run([*_CLI, "companies", "list", "--host-dir", str(host_dir), "--tenant", str(tenant)],
                            capture_output=True, timeout=120, env={**os.environ, "PYTHONIOENCODING": "latin-1",
                                                                   "COLUMNS": "200"})
    assert result.returncode == 0 and b"Traceback" not in result.stderr, result.stderr[-600:]
    assert b"Euro Parts ? GmbH" in result.stdout


@pytest.mark.parametrize("args", [[b"status", b"--as-user", b"m\xfcller@acme.example"],
                                  [b"host", b"init", b"--tenant-name", b"M\xfcller GmbH"]],
                         ids=["as-user", "host-init"])
def test_an_argument_that_is_not_utf8_is_a_usage_error_before_anything_is_written(tmp_path, args):
    """Typed in a Latin-1 terminal: exit 2 saying so, no traceback, no host database left."""
    import subprocess

    host_dir = tmp_path / "host"
    result = subprocess.run([*_CLI, *args, b"--host-dir", str(host_dir).encode()], capture_output=True, timeout=120)
    assert result.returncode == 2 and b"Traceback" not in result.stderr and b"UTF-8" in result.stderr
    assert not host_dir.exists()


def test_a_corrupt_host_database_is_one_line_and_exit_2_not_a_traceback(tmp_path):
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    (host_dir / "host.sqlite3").write_bytes(b"this is not a database" * 200)
    for args in (["status", "--tenant", "1"], ["worker", "--once"], ["host", "token", "--tenant", "1"]):
        result = _invoke(*args, "--host-dir", str(host_dir))
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit), (args, result.output)
        assert "host.sqlite3" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(("args", "option"), [
    (["host", "serve", "--public-base-url", "not a url"], "--public-base-url"),
    (["host", "serve", "--public-base-url", "ftp://tracker.example.com"], "--public-base-url"),
    (["status", "--tenant", "1", "--host-factory", "os:sep"], "--host-factory"),
])
def test_an_option_value_of_the_wrong_kind_is_a_usage_error_naming_it(tmp_path, args, option):
    result = _invoke(*args, "--host-dir", str(tmp_path))
    assert result.exit_code == 2 and option in result.output and isinstance(result.exception, SystemExit)
