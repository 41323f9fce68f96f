"""The package as users get it: ``pip install .`` into a fresh virtualenv, found by entry point.

One non-editable install of a copy of the working tree serves the whole module (it takes a
minute); a snippet then runs in that virtualenv, isolated from the repository, builds a
ReferenceHost with entry-point loading on and reports what the plugin manager holds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent

_SNIPPET = """
import importlib.metadata
import json
import sys
import tempfile
from pathlib import Path

import ambac_hubspot_plugin
from ambac_hubspot_plugin.reference_host import ReferenceHost

with tempfile.TemporaryDirectory() as data_dir, ReferenceHost(Path(data_dir)) as host:
    pm = host.plugin_manager
    sdk_after_registration = "hubspot" in sys.modules
    manifests = host.list_plugins()
    report = {
        "plugin_names": [name for name, _ in pm.list_name_plugin()],
        "distributions": {
            pm.get_name(plugin): [dist.project_name, dist.version]
            for plugin, dist in pm.list_plugin_distinfo()
        },
        "entry_points": [
            [ep.name, ep.value, ep.dist.name if ep.dist else None]
            for ep in importlib.metadata.entry_points(group="ambac_tracker")
        ],
        "manifests": [
            {"id": m.id, "name": m.name, "version": m.version, "permissions": list(m.permissions)}
            for m in manifests
        ],
        "sdk_after_registration": sdk_after_registration,
        "sdk_after_manifest": "hubspot" in sys.modules,
        "package_file": ambac_hubspot_plugin.__file__,
        "license_files": importlib.metadata.metadata("ambac-hubspot-plugin").get_all("License-File"),
        "dist_files": [str(f) for f in importlib.metadata.files("ambac-hubspot-plugin") or ()],
        "prefix": sys.prefix,
        "version": ambac_hubspot_plugin.__version__,
    }
    # The whole path as a user gets it: store migrations from the wheel, the SDK, a sync.
    from ambac_hubspot_plugin.sandbox import RateLimits, Sandbox
    from ambac_hubspot_plugin.store import HEAD, current_revision

    with Sandbox(rate_limits=RateLimits.unlimited()) as hubspot:
        hubspot.seed(companies=5, contacts=10, deals=30, seed=2)
        tenant = host.create_tenant("Installed")
        host.enable_plugin(tenant, "hubspot", {
            "portal_id": str(hubspot.portal_id), "api_base_url": hubspot.base_url, "local_sandbox": True,
            "credentials": {"kind": "private_app", "access_token": hubspot.access_token},
            "run_background_worker": False})
        runtime = pm.get_plugin("hubspot.runtime").runtime
        result = runtime.run_sync(tenant)
        report["sync_created"] = result.created
        report["orders"] = len(host.services(tenant).list_orders())
        report["store_revision"] = current_revision(runtime.store_for(tenant).engine)
        report["head_revision"] = HEAD
print(json.dumps(report))
"""


def _clean_env() -> dict[str, str]:
    """The environment minus anything that would put the repository on the venv's path."""
    return {
        key: value for key, value in os.environ.items() if key not in {"PYTHONPATH", "PYTHONHOME"}
    }


@pytest.fixture(scope="module")
def installed_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a fresh virtualenv holding ``pip install .`` of the working tree."""
    root = tmp_path_factory.mktemp("installed")
    # Build from a copy so setuptools' build/ and *.egg-info never land in the working tree,
    # where importlib.metadata would find them and blur what this test proves.
    source = root / "source"
    shutil.copytree(
        REPO_ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".venv",
            ".git",
            "build",
            "dist",
            "*.egg-info",
            "__pycache__",
            ".*_cache",
            ".ambac-hubspot",
        ),
    )
    venv_dir = root / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", str(venv_dir)], check=True, env=_clean_env(), timeout=300
    )
    python = venv_dir / ("Scripts" if os.name == "nt" else "bin") / "python"
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            str(source),
        ],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=900,
        check=False,
    )
    assert install.returncode == 0, f"pip install failed:\n{install.stdout}\n{install.stderr}"
    return python


@pytest.fixture(scope="module")
def report(installed_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What a ReferenceHost with entry-point loading sees inside the installed virtualenv."""
    outside_repo = tmp_path_factory.mktemp("run")
    # -I: ignore PYTHON* variables and the current directory, so only the venv's packages count.
    result = subprocess.run(
        [str(installed_python), "-I", "-c", _SNIPPET],
        capture_output=True,
        text=True,
        cwd=outside_repo,
        env=_clean_env(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def test_plugin_is_discovered_through_its_entry_point(report: dict[str, Any]):
    """The installed dist declares entry point ambac_tracker:hubspot; the host registers it so."""
    assert ["hubspot", "ambac_hubspot_plugin.plugin", "ambac-hubspot-plugin"] in report[
        "entry_points"
    ]
    assert "hubspot" in report["plugin_names"]
    assert report["distributions"]["hubspot"][0] == "ambac-hubspot-plugin"
    assert report["distributions"]["hubspot"][1] == report["version"]


def test_installed_copy_is_used_not_the_repository(report: dict[str, Any]):
    """The package imported in the venv is the installed (non-editable) copy inside the venv."""
    assert Path(report["package_file"]).is_relative_to(report["prefix"])
    assert not Path(report["package_file"]).is_relative_to(REPO_ROOT)


def test_manifest_comes_from_the_installed_plugin(report: dict[str, Any]):
    """ambac_plugin_manifest answers with id 'hubspot' and both integration permissions."""
    manifests = {manifest["id"]: manifest for manifest in report["manifests"]}
    assert manifests["hubspot"]["version"] == report["version"]
    assert set(manifests["hubspot"]["permissions"]) == {"manage_integrations", "view_integrations"}


def test_installed_package_migrates_its_store_and_syncs(report: dict[str, Any]):
    """Enabling the installed plugin migrates its store to the newest revision from the wheel's
    own migration files, and a sync against the sandbox creates orders."""
    assert report["store_revision"] == report["head_revision"]
    assert report["sync_created"] > 0 and report["orders"] == report["sync_created"]


def test_registration_does_not_import_the_hubspot_sdk(report: dict[str, Any]):
    """Discovering, registering and asking the plugin for its manifest leave the SDK unimported."""
    assert report["sdk_after_registration"] is False
    assert report["sdk_after_manifest"] is False


def test_installed_distribution_carries_the_license(report: dict[str, Any]):
    """The wheel pip built names LICENSE in its metadata and installs it in its .dist-info."""
    assert report["license_files"] and "LICENSE" in report["license_files"][0]
    assert any(".dist-info/" in f and f.endswith("LICENSE") for f in report["dist_files"])
