"""The tree shows the architecture: one concept per module, no name twice, no import cycle,
and the pure domain free of I/O clients."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("prsm_events", "streams")
PURE = ("events", "accounting", "decisions", "watch", "scoring", "anomaly", "operations",
        "alerting", "reports")
IO_CLIENTS = ("aiokafka", "faust", "clickhouse_connect", "chdb", "streams", "mode")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """Every module of ours that ``path`` imports anywhere (top level, functions,
    TYPE_CHECKING blocks)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in known and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in known:
                out.add(name)
    return out


def external_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_no_import_cycle() -> None:
    found = modules()
    graph = {name: imports(path, set(found)) - {name} for name, path in found.items()}
    # a package's __init__ is not a dependency of its own modules here (Python loads it first)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt):], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_no_module_name_twice() -> None:
    names = Counter(path.stem for path in modules().values()
                    if path.stem not in ("__init__", "__main__"))
    assert [name for name, count in names.items() if count > 1] == []


def test_every_module_declares_its_public_names() -> None:
    missing = [name for name, path in modules().items()
               if path.stem != "__main__" and "__all__" not in path.read_text()]
    assert missing == []


def test_the_pure_domain_imports_no_io_client() -> None:
    found = modules()
    offenders = {
        name: sorted(external_imports(path) & set(IO_CLIENTS))
        for name, path in found.items()
        if name.split(".")[:2][-1] in PURE and name.startswith("prsm_events.")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_the_cli_starts_the_runtime() -> None:
    found = modules()
    callers = sorted(name for name, path in found.items() if name.startswith("prsm_events")
                     and any(dep.startswith("streams") for dep in imports(path, set(found))))
    assert callers == ["prsm_events.cli.main"]
