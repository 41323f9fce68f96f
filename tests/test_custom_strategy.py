"""Strategies from other packages, and the examples of ``docs/strategies.md``, really work.

The custom strategy is the one the documentation shows: the test reads its code and its
``pyproject.toml`` from the page, builds that separate distribution with pip and installs it
into a directory of its own (``pip install --target``), which only the child host process sees
on its path. Installing into the shared ``.venv`` instead would change what every other test
run in that environment at the same moment loads by entry point; a distribution registering
``default`` would break them all.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ambac_hubspot_plugin._facade import PluginHooks
from ambac_hubspot_plugin.client import Deal
from ambac_hubspot_plugin.conflicts import Change, FieldConflict, compare, to_json
from ambac_hubspot_plugin.host import OrderStatus
from ambac_hubspot_plugin.mapping import ConfigurableMapping, DealContext, MappingStrategy
from tests.conftest import make_plugin_manager

REPO_ROOT = Path(__file__).resolve().parent.parent
DOC = REPO_ROOT / "docs" / "strategies.md"
CHILD = Path(__file__).resolve().parent / "_custom_child.py"

# A module of a second distribution that takes a name the plugin already registers.
CLASH_MODULE = """
from ambac_hubspot_plugin.host import hookimpl
from ambac_hubspot_plugin.mapping import DefaultMapping


@hookimpl
def hubspot_register_mapping_strategies(register):
    register("default", DefaultMapping)
"""


def doc_examples() -> dict[str, str]:
    """The blocks of docs/strategies.md marked ``<!-- example: NAME -->``, by name."""
    text = DOC.read_text(encoding="utf-8")
    found = re.findall(
        r"<!-- example: (\S+) -->\n```\w*\n(.*?)^```", text, re.DOTALL | re.MULTILINE
    )
    return dict(found)


def _module(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(
        compile(source, f"docs/strategies.md:{name}", "exec"), module.__dict__
    )  # the doc's example is the code under test
    return module


def _install(source: Path, target: Path) -> None:
    """``pip install`` a distribution directory into ``target``, failing with pip's output."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"


def _distribution(root: Path, name: str, module: str, code: str) -> Path:
    """Write a distribution directory: the doc's pyproject (renamed) and one module."""
    pyproject = doc_examples()["pyproject.toml"]
    pyproject = (
        pyproject.replace("acme-hubspot-upper", name)
        .replace('"upper_mapping"', f'"{module}"')
        .replace("upper_mapping = ", f"{module} = ")
    )
    source = root / name
    source.mkdir()
    (source / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    (source / f"{module}.py").write_text(code, encoding="utf-8")
    return source


def _host_run(site: Path, data_dir: Path, strategy: str) -> dict[str, Any]:
    """Run the child host with ``site`` on its path; return what it printed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO_ROOT)])
    result = subprocess.run(
        [sys.executable, str(CHILD), str(data_dir), strategy],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=data_dir.parent,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


# ---- the documentation's examples, in this process -------------------------------------------


def test_doc_custom_strategy_is_complete_in_under_30_lines():
    """The documented custom strategy is a whole module under 30 lines that satisfies the port."""
    code = doc_examples()["upper_mapping.py"]
    assert len(code.splitlines()) < 30
    module = _module("upper_mapping", code)
    registered: dict[str, Any] = {}
    module.hubspot_register_mapping_strategies(register=registered.__setitem__)
    assert isinstance(registered["upper"]({}), MappingStrategy)


def test_doc_configurable_example_maps_the_sample_deal_as_documented():
    """The configurable example, applied to the documented deal, gives the documented order."""
    examples = doc_examples()
    options = json.loads(examples["configurable-settings"])["mapping"]["options"]
    strategy = ConfigurableMapping(options)
    deal = Deal(
        id="7",
        properties=json.loads(examples["configurable-deal"]),
        updated_at=datetime(2026, 11, 3, tzinfo=UTC),
    )
    context = DealContext(
        portal_id="1",
        deal=deal,
        company=None,
        contacts=(),
        stage_status=None,
        timezone=ZoneInfo("America/Chicago"),
    )
    fields = strategy.order_fields(context)
    as_text = {
        k: v.value if isinstance(v, OrderStatus) else v if v is None else str(v)
        for k, v in fields.items()
    }
    assert as_text == json.loads(examples["configurable-order"])
    assert isinstance(fields["value"], Decimal)
    assert isinstance(fields["estimated_completion"], date)
    assert {"po_number", "net_amount", "ship_by", "priority", "notes_for_shop"} <= set(
        strategy.deal_properties
    )


def test_doc_conflict_example_registers_and_decides():
    """The documented conflict strategy registers through its hook and keeps the larger value."""
    module = _module("larger_value_wins", doc_examples()["larger_value_wins.py"])
    strategies = PluginHooks(make_plugin_manager(module)).conflict_strategies()
    strategy = strategies["larger_value_wins"]({})

    def conflict(field: str, hubspot: object, host: object) -> FieldConflict:
        return FieldConflict(
            tenant_id=1,
            object_type="order",
            record="deal:1",
            field=field,
            hubspot_value=hubspot,
            host_value=host,
            last_synced="1",
            hubspot_changed_at=None,
            host_changed_at=None,
        )

    assert strategy.decide(conflict("value", Decimal(5), Decimal(9))).winner == "ambac"
    assert strategy.decide(conflict("value", None, Decimal(9))).winner == "ambac"
    assert strategy.decide(conflict("value", Decimal(12), Decimal(9))).winner == "hubspot"
    assert strategy.decide(conflict("name", "HubSpot", "Host")).winner == "hubspot"


# ---- separate distributions, found by entry point --------------------------------------------


@pytest.fixture(scope="module")
def upper_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documented distribution, built and installed into a directory of its own."""
    root = tmp_path_factory.mktemp("upper")
    source = _distribution(
        root, "acme-hubspot-upper", "upper_mapping", doc_examples()["upper_mapping.py"]
    )
    _install(source, root / "site")
    return root / "site"


@pytest.mark.slow
def test_strategy_from_a_separate_distribution_maps_the_order(upper_site: Path, tmp_path: Path):
    """A host loading entry points finds the installed 'upper' strategy and the order uses it."""
    assert (upper_site / "upper_mapping.py").exists()
    assert list(upper_site.glob("acme_hubspot_upper-1.0.0.dist-info/entry_points.txt"))
    out = _host_run(upper_site, tmp_path / "host", "upper")
    name, module_file = out["plugins"]["upper_mapping"]
    assert name == "acme-hubspot-upper"
    assert Path(module_file).is_relative_to(upper_site)
    assert all(ok for _name, ok, _detail in out["enable_steps"]), out
    assert out["strategies"] == ["configurable", "default", "upper"]
    assert out["created"] == 1
    assert out["order"] == {
        "name": "BRACKETS FOR LINE 4",
        "customer_note": "Deburr all edges",
        "value": "1250.50",
    }


@pytest.mark.slow
def test_without_the_distribution_the_strategy_is_unknown(tmp_path: Path):
    """The same host without the distribution refuses 'upper', listing the installed strategies."""
    empty = tmp_path / "site"
    empty.mkdir()
    out = _host_run(empty, tmp_path / "host", "upper")
    error = out.get("enable_error") or out.get("sync_error") or ""
    assert "no mapping strategy named 'upper'" in error
    assert "['configurable', 'default']" in error
    assert "order" not in out


@pytest.mark.slow
def test_duplicate_strategy_name_from_a_separate_distribution_names_both_packages(
    upper_site: Path, tmp_path: Path
):
    """A second distribution registering 'default' gets a ConfigError naming it and the plugin."""
    source = _distribution(tmp_path, "acme-hubspot-clash", "clash_mapping", CLASH_MODULE)
    site = tmp_path / "site"
    _install(source, site)
    out = _host_run(site, tmp_path / "host", "default")
    assert out["plugins"]["clash_mapping"][0] == "acme-hubspot-clash"
    error = out.get("enable_error") or out.get("sync_error") or ""
    assert "Two packages register a mapping strategy named 'default'" in error
    assert "clash_mapping" in error
    assert "hubspot._builtins" in error
    assert "order" not in out


# ---- engine bugs found while documenting, fixed since --------------------------------------------


def test_synced_form_of_round_amounts_is_plain_digits():
    """Amounts are kept in the synced JSON form as plain digits: 100 is '100', not '1E+2'."""
    assert to_json(Decimal("100")) == "100"
    assert to_json(Decimal("18250.00")) == "18250"


def test_an_amount_the_host_keeps_with_more_decimal_places_is_not_a_host_change():
    """A host returning 10.50 for the synced 10.5 has not changed it: HubSpot's amount applies."""
    assert compare(Decimal("12.5"), Decimal("10.50"), {"value": "10.5"}, "value") is Change.HUBSPOT


@pytest.mark.slow
def test_enabling_with_an_uninstalled_strategy_is_refused(tmp_path: Path):
    """Enabling the plugin with mapping.strategy naming no installed strategy raises ConfigError."""
    empty = tmp_path / "site"
    empty.mkdir()
    out = _host_run(empty, tmp_path / "host", "upper")
    assert "no mapping strategy named 'upper'" in out.get("enable_error", "")
