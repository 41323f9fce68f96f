"""Meta-tests: the hook API is complete, documented, tested and safe to implement."""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pluggy
import pytest

from ambac_hubspot_plugin import hookspecs
from ambac_hubspot_plugin import host as contract

from .conftest import make_plugin_manager

ROOT = Path(__file__).resolve().parents[1]
SPEC_MODULES = (contract, hookspecs)


def _specs() -> list[tuple[str, inspect.Signature, str]]:
    found = []
    for module in SPEC_MODULES:
        for name, func in inspect.getmembers(module, inspect.isfunction):
            if name.startswith(("ambac_", "hubspot_")) and func.__module__ == module.__name__:
                found.append((name, inspect.signature(func), inspect.getdoc(func) or ""))
    return sorted(found)


SPECS = _specs()
SPEC_NAMES = [name for name, _sig, _doc in SPECS]


def test_spec_list_is_what_the_contract_promises():
    """The host contract has exactly the hooks HOST.md names, plus ambac_add_hookspecs."""
    ambac = {n for n in SPEC_NAMES if n.startswith("ambac_")}
    assert ambac == {
        "ambac_add_hookspecs", "ambac_plugin_manifest", "ambac_plugin_enabled",
        "ambac_plugin_started", "ambac_plugin_stopped", "ambac_plugin_disabled", "ambac_settings_changed",
        "ambac_order_status_changed",
        "ambac_order_updated", "ambac_order_shipped", "ambac_company_saved",
        "ambac_http_routes", "ambac_periodic_tasks",
    }
    assert {n for n in SPEC_NAMES if n.startswith("hubspot_")} >= {
        "hubspot_register_mapping_strategies", "hubspot_register_conflict_strategies",
        "hubspot_order_created", "hubspot_sync_step_failed",
    }


@pytest.mark.parametrize(("name", "signature", "doc"), SPECS, ids=SPEC_NAMES)
def test_spec_is_documented_under_its_exact_signature(name, signature, doc):
    """docs/hooks.md has a section whose heading is the hook's exact signature."""
    headings = re.findall(r"^#+ `([^`]+)`\s*$", (ROOT / "docs" / "hooks.md").read_text(), re.M)
    assert f"{name}({', '.join(signature.parameters)})" in headings


@pytest.mark.parametrize(("name", "signature", "doc"), SPECS, ids=SPEC_NAMES)
def test_spec_docstring_follows_the_house_style(name, signature, doc):
    """Each spec documents every parameter, its return value, and when it was added."""
    for param in signature.parameters:
        assert f":param {param}:" in doc, f"{name} does not document {param}"
    assert ":return:" in doc
    assert ".. versionadded::" in doc
    assert len(signature.parameters) <= 4, "more context goes into one frozen attrs object"


def _test_function_names() -> set[str]:
    names = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                names.add(node.name)
    return names


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_every_hook_has_a_test(name):
    """Some test is named after the hook (test_hook_<name> or test_hook_<name>_...)."""
    tests = _test_function_names()
    assert any(t == f"test_hook_{name}" or t.startswith(f"test_hook_{name}_") for t in tests)


def _all_hookimpls(pm: pluggy.PluginManager) -> list[pluggy.HookImpl]:
    return [impl for caller in pm.hook.__dict__.values()
            if isinstance(caller, pluggy.HookCaller) for impl in caller.get_hookimpls()]


def test_no_hookimpl_parameter_has_a_default():
    """No hookimpl of the plugin gives a parameter a default (pluggy 1.6/1.7 differ on them)."""
    impls = _all_hookimpls(make_plugin_manager())
    assert impls, "the plugin registered no hookimpls"
    for impl in impls:
        params = inspect.signature(impl.function).parameters.values()
        defaults = [p.name for p in params if p.default is not inspect.Parameter.empty]
        assert not defaults, f"{impl.plugin_name}.{impl.function.__name__} has defaults {defaults}"


def test_check_pending_passes_with_the_plugin_registered():
    """Every hookimpl the plugin registers matches a spec (check_pending raises otherwise)."""
    pm = make_plugin_manager()
    pm.check_pending()
    assert pm.get_plugin("hubspot.runtime") is not None


def test_entry_point_is_declared_and_loads():
    """The installed distribution declares entry point hubspot in group ambac_tracker."""
    eps = importlib.metadata.entry_points(group="ambac_tracker")
    (ep,) = [ep for ep in eps if ep.name == "hubspot"]
    assert ep.value == "ambac_hubspot_plugin.plugin"
    assert ep.dist is not None and ep.dist.name == "ambac-hubspot-plugin"
    module = ep.load()
    assert hasattr(module, "ambac_add_hookspecs")


def test_registering_the_plugin_imports_no_sdk_store_or_threads():
    """After registration through entry points, the SDK, SQLAlchemy and cattrs are not loaded."""
    code = """
import sys, threading, pluggy
from ambac_hubspot_plugin import host as contract
pm = pluggy.PluginManager(contract.PROJECT_NAME)
pm.add_hookspecs(contract)
pm.hook.ambac_add_hookspecs.call_historic(kwargs={"plugin_manager": pm})
pm.load_setuptools_entrypoints(contract.PROJECT_NAME)
pm.check_pending()
assert pm.get_plugin("hubspot") is not None, pm.list_name_plugin()
print(sorted(m for m in ("hubspot", "sqlalchemy", "alembic", "cattrs", "urllib3")
             if m in sys.modules), threading.active_count())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "1"]


def _message_strings_and_doc_calls() -> tuple[list[tuple[str, str]], set[str]]:
    """(file, text) of every non-docstring string of the package, and every page doc() names."""
    strings: list[tuple[str, str]] = []
    pages: set[str] = set()
    for path in sorted((ROOT / "ambac_hubspot_plugin").rglob("*.py")):
        tree = ast.parse(path.read_text())
        # A string standing alone as a statement is a docstring (of a module, class, function
        # or attribute), read in the source, never shown to a user.
        docstrings = {id(node.value) for node in ast.walk(tree)
                      if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                strings.append((path.name, node.value))
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "doc"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                pages.add(str(node.args[0].value))
    return strings, pages


def test_messages_name_docs_only_through_the_doc_helper():
    """A message names a docs page only through _checks.doc(), which says where the docs are."""
    strings, pages = _message_strings_and_doc_calls()
    bare = [(name, text) for name, text in strings
            if re.search(r"[\w-]+\.md\b", text) and not re.fullmatch(r"[\w-]+\.md", text)]
    assert not bare, f"messages naming a doc without saying where it is: {bare}"
    assert pages, "no message names a doc: the scan found nothing to check"


@pytest.fixture(scope="module")
def sdist_names(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The member names of the sdist built from a copy of the project (setuptools' own backend)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md", "LICENSE", "CHANGELOG.md"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    for folder in ("ambac_hubspot_plugin", "docs"):
        shutil.copytree(ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    code = "import sys; from setuptools import build_meta; build_meta.build_sdist(sys.argv[1])"
    built = subprocess.run([sys.executable, "-c", code, str(out)], cwd=src, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    (sdist,) = out.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        return [m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name]


def test_every_doc_a_message_names_exists_and_ships_in_the_sdist(sdist_names):
    """Each docs page a message names is in docs/ and in the source distribution."""
    _strings, pages = _message_strings_and_doc_calls()
    for page in sorted(pages):
        assert (ROOT / "docs" / page).is_file(), f"a message names docs/{page}, which does not exist"
        assert f"docs/{page}" in sdist_names, f"docs/{page} is not in the sdist"


def test_license_is_mit_and_ships_in_the_sdist(sdist_names):
    """LICENSE holds the MIT text setup.cfg declares, and the sdist carries it and the changelog."""
    assert {"LICENSE", "CHANGELOG.md", "README.md"} <= set(sdist_names)
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "2026 the ambac-hubspot-plugin authors" in text


def test_readme_starts_with_the_two_dev_commands_and_installs_without_the_index():
    """README opens with `dev.py demo` / `dev.py test`; no page installs the package from the index."""
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first_block.splitlines()] == [
        "python3 dev.py demo", "python3 dev.py test"]
    install = readme.split("## Install into Ambac Tracker", 1)[1].split("\n## ", 1)[0]
    assert "pip install ./" in install and "pip wheel" in install
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        from_index = re.findall(r"pip install ['\"]?ambac-hubspot-plugin", page.read_text())
        assert not from_index, f"{page.name} installs ambac-hubspot-plugin from the index, where it is not"


def test_docs_give_the_reference_hosts_prefix_in_plugin_urls():
    """Every example URL of a plugin route in docs/ uses the reference host's /integrations prefix."""
    from ambac_hubspot_plugin.reference_host import DEFAULT_MOUNT_PREFIX

    for page in sorted((ROOT / "docs").glob("*.md")):
        for prefix in re.findall(r"https?://[\w.:-]+(/[\w/-]*?)?/hubspot/(?:webhooks|crm-card)/", page.read_text()):
            assert prefix == DEFAULT_MOUNT_PREFIX, f"{page.name} mounts plugin routes under {prefix!r}"
