"""The package layering, checked from the source: the kernel (`hub`) imports no domain
package, the domain packages import each other without cycles, nothing imports the
composition root (`shaobing`), and each package owns its tables (docs/design.md §1).

Table ownership, as checked here: a table (or view) is created by the migrations of exactly
one package, its owner. The Python code of every other package names it in no SQL: it reaches
the table through the owner's functions (`hub.signal_log` for `signals`, `devices.registry`
for `devices`, ...). A migration may name an earlier package's table (hub.migrations.PACKAGES
order) only to attach to it, and each such attachment is listed in ATTACHMENTS with why.
SQL is what the code writes in capitals: a table name after FROM, JOIN, INTO, UPDATE, TABLE,
COPY, ON, REFERENCES or TRUNCATE."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from hub import migrations

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


def test_the_package_lists_agree() -> None:
    """The packages named here are those pyproject.toml builds and mypy checks (the Dockerfile's
    copies are held to pyproject by tests/test_docker.py), and every package with migrations is
    one the migration runner visits."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    built = {p.rstrip("*") for p in config["setuptools"]["packages"]["find"]["include"]}
    assert set(PACKAGES) == built
    assert set(config["mypy"]["packages"]) == built | {"bench"}
    with_migrations = {p for p in PACKAGES if (ROOT / p / "migrations").is_dir()}
    assert with_migrations == set(migrations.PACKAGES)


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


# --- table ownership -------------------------------------------------------------------------

_CREATED = re.compile(
    r"\bCREATE\s+(?:(?:TEMP|TEMPORARY|UNLOGGED)\s+)?(?:TABLE|(?:MATERIALIZED\s+)?VIEW)"
    r"\s+(?:IF\s+NOT\s+EXISTS\s+)?([a-z_][a-z0-9_]*)"
)
_NAMED = re.compile(
    r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE|COPY|ON|REFERENCES|TRUNCATE)\s+(?:ONLY\s+)?"
    r"([a-z_][a-z0-9_]*)"
)
# Where a later package's migration attaches to an earlier package's table, and why.
ATTACHMENTS = {
    ("gb28181", "devices"): "registrations and alarm inputs belong to a device (foreign keys);"
    " every device gets the 20-digit channel id upper platforms see it by (a column and its"
    " trigger, 002_cascade)",
    ("gb28181", "incident_events"): "a trigger writes the cascade's outbox in the incident's own"
    " transaction (002_cascade)",
    ("gb28181", "signals"): "a trigger writes the cascade's outbox for the signal kinds an uplink"
    " forwards, in the signal's transaction (003_cascade_signals)",
}


def migration_sql() -> dict[str, list[tuple[str, str]]]:
    """Each package's migration files (companions included): [(file, text)]."""
    return {
        package: [
            (str(path.relative_to(ROOT)), path.read_text(encoding="utf-8"))
            for path in sorted((ROOT / package / "migrations").glob("*.sql"))
        ]
        for package in PACKAGES
    }


def code_sql(package: str) -> list[tuple[str, str]]:
    """The string literals of `package`'s modules (f-strings' fixed parts included)."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.append((str(path.relative_to(ROOT)), node.value))
    return found


def owners() -> dict[str, set[str]]:
    """table → the packages whose migrations create it."""
    found: dict[str, set[str]] = {}
    for package, files in migration_sql().items():
        for _, text in files:
            for table in _CREATED.findall(text):
                found.setdefault(table, set()).add(package)
    return found


def test_each_table_is_created_by_one_package() -> None:
    created = owners()
    assert {"devices", "signals", "incidents", "id_reads", "notifications"} <= set(created)
    assert {table: found for table, found in created.items() if len(found) > 1} == {}
    assert created["id_reads"] == created["registers"] == {"idcard"}


def test_no_package_names_another_packages_tables_in_its_sql() -> None:
    owner = {table: found.pop() for table, found in owners().items()}
    for package in PACKAGES:  # tables made at run time: the runner's own, staging tables
        for _, text in code_sql(package):
            owner.update({table: package for table in _CREATED.findall(text)})
    trespass = sorted(
        (path, table, owner[table])
        for package in PACKAGES
        for path, text in code_sql(package)
        for table in _NAMED.findall(text)
        if owner.get(table, package) != package
    )
    assert trespass == []  # (module, table, its owner): call the owner's function instead


def test_a_migration_attaches_only_to_earlier_packages_tables_and_says_why() -> None:
    owner = {table: found.pop() for table, found in owners().items()}
    order = {package: i for i, package in enumerate(migrations.PACKAGES)}
    attached: set[tuple[str, str]] = set()
    for package, files in migration_sql().items():
        for path, text in files:
            for table in set(_NAMED.findall(text)):
                theirs = owner.get(table, package)
                if theirs == package:
                    continue
                assert order[theirs] < order[package], f"{path}: {table} is {theirs}'s, later"
                attached.add((package, table))
    assert attached == set(ATTACHMENTS)  # a new attachment is listed, an old one removed
