#!/usr/bin/env python3
"""Bootstrap and run the project: ``python3 dev.py demo`` or ``python3 dev.py test``.

Needs only Python 3.11+. Creates ``.venv`` beside this file, installs the package with its
test extras there (again whenever ``setup.cfg`` changes), then runs the demo or the test suite.

``test`` also runs the Django bridge's tests (``tests/django``) twice, each in an environment
built with a Python 3.12 interpreter (Ambac Tracker's) and the extras
``[test,postgres,django,django-test]``: ``.venv-django`` with the newest releases, then
``.venv-django-host`` with the versions Ambac Tracker runs (``tests/django/host-versions.txt``:
Django 5.1, Celery 5.6); without a Python 3.12 it says so and skips them. The Django runs
(their environments' builds included) go on one after the other beside the main run, on the
other CPU, with Redis database 12 for their Celery worker (``AMBAC_TEST_REDIS_DB``) so they
never share keys with the main run; their output is printed once the main run has ended. The main run itself is spread
over worker processes (pytest-xdist, one per CPU, at least 2 and at most 4, a test module to a
worker): most of its time is spent waiting on sockets, subprocesses and timers, not computing.
With arguments, ``test`` passes them to the main run only (in one process) and skips the
Django run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import venv
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"


def _bin(venv_dir: Path) -> Path:
    """The scripts directory of the virtual environment ``venv_dir``."""
    return venv_dir / ("Scripts" if os.name == "nt" else "bin")


BIN = _bin(VENV)
STAMP = VENV / ".ambac-hubspot-installed"
DJANGO_EXTRAS = "test,postgres,django,django-test"
#: The Django bridge's environments: (directory, pip constraints or None for the newest releases).
DJANGO_ENVS = ((ROOT / ".venv-django", None),
               (ROOT / ".venv-django-host", ROOT / "tests" / "django" / "host-versions.txt"))


def _install(python: Path, stamp: Path, extras: str, name: str, out: Any = None,
             constraints: Path | None = None) -> None:
    """Install the package with ``extras`` (within pip ``constraints``, if any) into the
    environment of ``python`` unless ``stamp`` says that was done for this ``setup.cfg`` and
    these constraints (``out``: where pip's output goes)."""
    digest = hashlib.sha256((ROOT / "setup.cfg").read_bytes())
    if constraints is not None:
        digest.update(constraints.read_bytes())
    wanted = digest.hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    print(f"dev.py: installing the package and its test dependencies into {name}", flush=True, file=out)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True, stdout=out, stderr=out)
    pinned = [] if constraints is None else ["--constraint", str(constraints)]
    subprocess.run([*pip, *pinned, "--editable", f"{ROOT}[{extras}]"], check=True, stdout=out, stderr=out)
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


def _django_tests(out: Any) -> int:
    """Run ``tests/django`` in each of :data:`DJANGO_ENVS`, one after the other, writing to
    ``out``; the first failing run's code, or 0 (after saying why) when no Python 3.12 exists."""
    code = 0
    for venv_dir, constraints in DJANGO_ENVS:
        python = _bin(venv_dir) / "python"
        if not python.exists():
            interpreter = _python312()
            if interpreter is None:
                print("dev.py: SKIPPED tests/django: no Python 3.12 found (python3.12 on PATH or pyenv)", file=out)
                return 0
            print(f"dev.py: creating {venv_dir.name} with {interpreter}", file=out, flush=True)
            subprocess.run([interpreter, "-m", "venv", str(venv_dir)], check=True, stdout=out, stderr=out)
        _install(python, venv_dir / ".ambac-hubspot-installed", DJANGO_EXTRAS, venv_dir.name, out, constraints)
        versions = "the newest releases" if constraints is None else f"the versions in {constraints.relative_to(ROOT)}"
        print(f"dev.py: running tests/django in {venv_dir.name} ({versions})", file=out, flush=True)
        env = {**os.environ, "AMBAC_TEST_REDIS_DB": os.environ.get("AMBAC_TEST_REDIS_DB_DJANGO", "12")}
        ran = subprocess.run([str(python), "-m", "pytest", "tests/django"], cwd=ROOT, env=env, check=False,
                             stdout=out, stderr=subprocess.STDOUT)
        code = code or ran.returncode  # the second run goes on after a failing first one
    return code


def _beside(run: Any) -> tuple[threading.Thread, dict[str, int], Any]:
    """Start ``run(out)`` in a thread writing to a temporary file: ``(thread, result, file)``."""
    out = tempfile.TemporaryFile("w+")
    result: dict[str, int] = {}

    def target() -> None:
        try:
            result["code"] = run(out)
        except Exception as exc:  # a failed venv build: reported, and the run fails
            print(f"dev.py: the Django run could not start: {exc}", file=out, flush=True)
            result["code"] = 1

    thread = threading.Thread(target=target, name="django-tests")
    thread.start()
    return thread, result, out


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "cli"}:
        print(__doc__)
        return 2
    _ensure_env()
    command, rest = argv[0], argv[1:]
    if command == "test":
        spread = [] if rest else ["-n", str(max(2, min(4, os.cpu_count() or 2))), "--dist", "loadfile"]
        args = [str(BIN / "python"), "-m", "pytest", *spread, *rest]
    elif command == "demo":
        args = [str(BIN / "ambac-hubspot"), "demo", *rest]
    else:
        args = [str(BIN / "ambac-hubspot"), *rest]
    django = _beside(_django_tests) if command == "test" and not rest else None
    code = subprocess.run(args, cwd=ROOT, check=False).returncode
    if django is not None:
        thread, result, out = django
        thread.join()
        out.seek(0)
        sys.stdout.write(out.read())
        sys.stdout.flush()
        code = code or result.get("code", 1)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
