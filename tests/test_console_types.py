"""The console's API types (web/src/api/schema.d.ts) say what the API serves: `shaobing
openapi` writes the document the hub serves at /openapi.json, openapi-typescript turns it into
TypeScript as `make console` does, and the result must be the checked-in file."""

from __future__ import annotations

import difflib
import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.test_cli import shaobing

ROOT = Path(__file__).resolve().parent.parent
TYPES = ROOT / "web" / "src" / "api" / "schema.d.ts"
GENERATOR = ROOT / "web" / "node_modules" / ".bin" / "openapi-typescript"
SHOWN = 80  # lines of the difference shown in a failure


def test_the_document_written_is_the_one_the_hub_serves(api_url: str) -> None:
    written = json.loads(shaobing("openapi", check=True).stdout)
    assert written == httpx.get(f"{api_url}/openapi.json").json()


def test_the_document_is_written_the_same_whatever_the_settings(tmp_path: Path) -> None:
    out = tmp_path / "openapi.json"
    plain = shaobing("openapi", check=True).stdout
    shaobing("openapi", "--out", str(out), check=True, SB_TIMEZONE="UTC", SB_MAX_BODY_BYTES="5")
    assert out.read_text(encoding="utf-8") == plain
    # Sorted keys and one layout: the same code always writes the same bytes.
    assert (
        plain == json.dumps(json.loads(plain), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    )


@pytest.mark.skipif(not GENERATOR.exists(), reason="run `cd web && npm ci` (make console does)")
def test_the_console_types_are_generated_from_the_document(tmp_path: Path) -> None:
    document, generated = tmp_path / "openapi.json", tmp_path / "schema.d.ts"
    shaobing("openapi", "--out", str(document), check=True)
    subprocess.run(
        [GENERATOR, document, "--output", generated],
        check=True,
        capture_output=True,
        timeout=120,
    )
    want = generated.read_text(encoding="utf-8")
    have = TYPES.read_text(encoding="utf-8")
    if want != have:
        pytest.fail(
            "web/src/api/schema.d.ts is not what the API's OpenAPI document says: run "
            "`make api-types` (or `make console`, which also builds the console) and commit "
            "the file.\n" + _difference(have, want)
        )


def _difference(have: str, want: str) -> str:
    lines = list(
        difflib.unified_diff(
            have.splitlines(),
            want.splitlines(),
            "web/src/api/schema.d.ts (checked in)",
            "generated from the API's OpenAPI document",
            lineterm="",
        )
    )
    more = f"\n… {len(lines) - SHOWN} more lines" if len(lines) > SHOWN else ""
    return "\n".join(lines[:SHOWN]) + more
