"""House style the formatter keeps: production code is formatted as `ruff format` writes it, with
`# fmt: skip` the rare exception (a table whose columns line up), not the habit."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MOST_SKIPS = 20


def production_sources() -> list[Path]:
    """Tracked .py files outside tests/ and bench/."""
    listed = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return [ROOT / name for name in listed if not name.startswith(("tests/", "bench/"))]


def test_production_code_rarely_opts_out_of_the_formatter() -> None:
    sources = production_sources()
    assert len(sources) > 100  # the listing found the tree
    skips = {
        str(path.relative_to(ROOT)): text.count("fmt: skip")
        for path in sources
        if "fmt: skip" in (text := path.read_text(encoding="utf-8"))
    }
    assert sum(skips.values()) < MOST_SKIPS, skips
