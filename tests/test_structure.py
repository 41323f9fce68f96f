"""The package's structure: an import graph without cycles, no module reaching into another's
private state, modules of one job and a bounded size, and only the public modules a third
party uses (docs/architecture.md)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ambac_hubspot_plugin"
NAME = PACKAGE.name
#: The one module allowed past the size bound: the sandbox's whole HubSpot portal state.
SIZE_EXCEPTIONS = {"sandbox._state"}
MAX_LINES = 600
#: The modules a third party imports: the host contract, the extension hookspecs, the
#: strategies and their records, the client port, errors, events, settings, the plugin entry
#: point, the admin API, the reference host, the sandbox and the host bridges (``contrib``).
PUBLIC = {
    "",
    "admin",
    "cli",
    "client",
    "conflicts",
    "contrib",
    "errors",
    "events",
    "hookspecs",
    "host",
    "mapping",
    "plugin",
    "reference_host",
    "sandbox",
    "settings",
    "store",
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(module: str) -> Iterator[tuple[str, ast.ImportFrom | ast.Import]]:
    """Every package module ``module`` imports, at any depth of its code."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    package = [p for p in package if p]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif node.module and node.module.startswith(NAME):
                target = node.module[len(NAME) :].lstrip(".")
            else:
                continue
            for alias in node.names:
                candidate = f"{target}.{alias.name}".lstrip(".")
                yield (candidate if candidate in MODULES else _owner(target)), node
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(NAME + "."):
                    yield _owner(alias.name[len(NAME) + 1 :]), node


def _owner(dotted: str) -> str:
    while dotted and dotted not in MODULES:
        dotted = dotted.rpartition(".")[0]
    return dotted


def _graph() -> dict[str, set[str]]:
    return {
        module: {target for target, _node in _imports(module) if target and target != module}
        for module in MODULES
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_import_graph_has_no_cycles() -> None:
    """Counting every import (module level, TYPE_CHECKING and inside functions), no module
    depends on itself through others: each room can be read from the bottom up."""
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check above is not vacuous."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module: str) -> None:
    """A module over 600 lines does more than one job (the sandbox's state excepted)."""
    lines = len(MODULES[module].read_text().splitlines())
    assert module in SIZE_EXCEPTIONS or lines <= MAX_LINES, f"{module}: {lines} lines"


def test_no_module_reaches_into_another_modules_private_names() -> None:
    """``from ._x import _private`` or ``obj._private`` of the runtime happen only inside the
    module (or package) that owns the name."""
    offences = []
    for module, path in MODULES.items():
        for target, node in _imports(module):
            if not isinstance(node, ast.ImportFrom):
                continue
            # a subpackage's modules share its internals; top-level modules share nothing
            inside = target.rpartition(".")[0]
            same_package = bool(inside) and (
                inside == module.rpartition(".")[0] or inside == module
            )
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                whole_module = target.rpartition(".")[2] == alias.name  # ``from . import _x``
                if private and not same_package and not whole_module:
                    offences.append(f"{module} imports {alias.name} from {target}")
        source = path.read_text()
        if module != "_runtime" and "runtime._" in source:
            offences.append(f"{module} touches a private name of the runtime")
    assert offences == []


#: Frameworks only a host bridge may import, each with the bridge (``contrib.<name>``) allowed to:
#: Django and the modules of Ambac Tracker (``Tracker``, ``integrations``) for the Django bridge.
BRIDGED = {"django": "contrib.django", "Tracker": "contrib.django", "integrations": "contrib.django"}


def _absolute_imports(module: str) -> set[str]:
    """The top-level names of every absolute import of ``module``, at any depth of its code."""
    names = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.partition(".")[0])
    return names


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_only_a_host_bridge_imports_its_framework() -> None:
    """Django (and the host's ``Tracker``) are imported by ``contrib.django`` alone, and no
    module outside ``contrib`` imports a bridge: the core never learns a host's framework."""
    offences = [
        f"{module} imports {name}"
        for module in MODULES
        for name in _absolute_imports(module) & BRIDGED.keys()
        if not _in(module, BRIDGED[name])
    ]
    offences += [
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if _in(target, "contrib") and target != "contrib" and not _in(module, "contrib")
    ]
    assert offences == []
    assert "django" in _absolute_imports("contrib.django.apps")  # the check sees the bridge


def test_only_the_modules_a_third_party_uses_are_public() -> None:
    """Engines (inbound, outbound, webhooks, the adapter) are private modules."""
    top = {m.split(".")[0] for m in MODULES if m}
    public = {m for m in top if not m.startswith("_")}
    assert public == PUBLIC - {""}
