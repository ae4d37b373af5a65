"""The package layering, checked from the source: the kernel (`hub`) imports no domain
package, the domain packages import each other without cycles, and nothing imports the
composition root (`shaobing`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KERNEL = "hub"
DOMAINS = (
    "devices",
    "ingest",
    "idcard",
    "simulator",
    "rules",
    "incidents",
    "notify",
    "vision",
    "api",
    "gb28181",
)
ROOT_PACKAGE = "shaobing"
PACKAGES = (KERNEL, *DOMAINS, ROOT_PACKAGE)


def imported_packages(package: str) -> dict[str, set[str]]:
    """Our packages each module of `package` imports (module path → packages)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = {n for n in names if n in PACKAGES} - {package}
    return found


def test_the_kernel_imports_no_domain_package() -> None:
    offenders = {m: used for m, used in imported_packages(KERNEL).items() if used}
    assert offenders == {}


def test_nothing_imports_the_composition_root() -> None:
    for package in (KERNEL, *DOMAINS):
        offenders = {m: u for m, u in imported_packages(package).items() if ROOT_PACKAGE in u}
        assert offenders == {}, package


def test_domain_packages_have_no_import_cycles() -> None:
    graph = {
        package: set().union(*imported_packages(package).values()) - {KERNEL} for package in DOMAINS
    }
    visiting: list[str] = []

    def visit(package: str, done: set[str]) -> None:
        if package in visiting:
            pytest.fail(
                "import cycle: " + " → ".join([*visiting[visiting.index(package) :], package])
            )
        if package in done:
            return
        visiting.append(package)
        for used in sorted(graph[package]):
            visit(used, done)
        visiting.pop()
        done.add(package)

    done: set[str] = set()
    for package in DOMAINS:
        visit(package, done)
