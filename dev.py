#!/usr/bin/env python3
"""Bootstrap and run the project: ``python3 dev.py demo`` or ``python3 dev.py test``.

Needs only Python 3.11+. Creates ``.venv`` beside this file, installs the package with its
test extras there (again whenever ``setup.cfg`` changes), then runs the demo or the test suite.

``test`` also runs the Django bridge's tests (``tests/django``) in a second environment,
``.venv-django``, built with a Python 3.12 interpreter (Ambac Tracker's) and the extras
``[test,postgres,django,django-test]``; without a Python 3.12 it says so and skips them. With
arguments, ``test`` passes them to the main run only and skips the Django run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".ambac-hubspot-installed"
DJANGO_VENV = ROOT / ".venv-django"
DJANGO_BIN = DJANGO_VENV / ("Scripts" if os.name == "nt" else "bin")
DJANGO_EXTRAS = "test,postgres,django,django-test"


def _install(python: Path, stamp: Path, extras: str, name: str) -> None:
    """Install the package with ``extras`` into the environment of ``python`` unless ``stamp``
    says that was done for this ``setup.cfg``."""
    wanted = hashlib.sha256((ROOT / "setup.cfg").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    print(f"dev.py: installing the package and its test dependencies into {name}", flush=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "--editable", f"{ROOT}[{extras}]"], check=True)
    stamp.write_text(wanted)


def _ensure_env() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}.")
    if not (BIN / "python").exists():
        print("dev.py: creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    _install(BIN / "python", STAMP, "test,postgres,lint", ".venv")


def _python312() -> str | None:
    """A working Python 3.12: ``python3.12`` on PATH, else one pyenv installed (a pyenv shim
    on PATH may name a version it will not run, so each candidate is tried)."""
    candidates = [shutil.which("python3.12")]
    for versions in (Path.home() / ".pyenv" / "versions", Path("/root/.pyenv/versions")):
        candidates += [str(p) for p in sorted(versions.glob("3.12*/bin/python3.12"), reverse=True)]
    for candidate in candidates:
        if candidate and subprocess.run(
            [candidate, "-c", "import sys; sys.exit(sys.version_info[:2] != (3, 12))"],
            capture_output=True, check=False,
        ).returncode == 0:
            return candidate
    return None


def _django_tests() -> int:
    """Run ``tests/django`` in ``.venv-django``; 0 (after saying why) when no Python 3.12 exists."""
    python = DJANGO_BIN / "python"
    if not python.exists():
        interpreter = _python312()
        if interpreter is None:
            print("dev.py: SKIPPED tests/django: no Python 3.12 found (python3.12 on PATH or pyenv)", flush=True)
            return 0
        print(f"dev.py: creating .venv-django with {interpreter}", flush=True)
        subprocess.run([interpreter, "-m", "venv", str(DJANGO_VENV)], check=True)
    _install(python, DJANGO_VENV / ".ambac-hubspot-installed", DJANGO_EXTRAS, ".venv-django")
    print("dev.py: running tests/django in .venv-django", flush=True)
    return subprocess.run([str(python), "-m", "pytest", "tests/django"], cwd=ROOT, check=False).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "cli"}:
        print(__doc__)
        return 2
    _ensure_env()
    command, rest = argv[0], argv[1:]
    if command == "test":
        args = [str(BIN / "python"), "-m", "pytest", *rest]
    elif command == "demo":
        args = [str(BIN / "ambac-hubspot"), "demo", *rest]
    else:
        args = [str(BIN / "ambac-hubspot"), *rest]
    code = subprocess.run(args, cwd=ROOT, check=False).returncode
    if command == "test" and not rest:
        django_code = _django_tests()
        code = code or django_code
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
