"""docs/design.md held to the code.

"An alarm's path" names, hop by hop, the file and the function where each hop happens: every
one must exist, so that a package move that leaves the page behind fails here, naming the hop
and the reference that broke. The lists marked `<!-- list: NAME -->` (in design.md, and on any
page that repeats one) must be exactly what the code has: the signal kinds and event types of
`hub/contracts.py`, the live stream's events as the code announces them, the error shape of
`api/errors.py` and its codes. The marker stands alone on its line, right before the
paragraph or table it marks.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest

import hub.errors
from api.errors import ErrorBody, ErrorDetail, FieldError
from hub.contracts import CAMERA_EVENT_TYPES, KINDS, SmokeEventType
from tests.test_style import production_sources

ROOT = Path(__file__).resolve().parent.parent
DESIGN = ROOT / "docs" / "design.md"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PATH_SECTION = "An alarm's path"
TICKED = re.compile(r"`([^`]+)`")
SOURCE = re.compile(r"[\w./-]+\.(?:py|ts|vue)")
NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?")
MARKER = re.compile(r"<!--\s*list:\s*([\w-]+)\s*-->")


# --- An alarm's path ----------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    hop: str  # "hop 4 (written with its batch)"
    file: str
    name: str

    def __str__(self) -> str:
        return f"{self.hop}: `{self.file}` `{self.name}`"


def section(text: str, title: str) -> list[str]:
    """The lines of the `## ...` section whose heading contains `title`."""
    lines = text.splitlines()
    headings = [i for i, line in enumerate(lines) if line.startswith("## ") and title in line]
    assert headings, f"docs/design.md has no section '{title}'"
    start = headings[0]
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), None)
    return lines[start + 1 : end]


def cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def hops() -> list[tuple[str, str]]:
    """(hop, its `where` cell) for each row of the section's table."""
    lines = section(DESIGN.read_text(encoding="utf-8"), PATH_SECTION)
    rows = [line for line in lines if line.startswith("|")]
    header, body = cells(rows[0]), [cells(row) for row in rows[2:]]
    where = header.index("where")
    return [(f"hop {row[0]} ({row[1]})", row[where]) for row in body]


def references_of(hop: str, where: str) -> list[Reference]:
    """`path/file.py` `function`, `Class.method`, ...: each name belongs to the file before it."""
    found: list[Reference] = []
    current: str | None = None
    for token in TICKED.findall(where):
        if SOURCE.fullmatch(token):
            current = token
        elif NAME.fullmatch(token) and current is not None:
            found.append(Reference(hop, current, token))
        else:
            raise AssertionError(f"{hop}: `{token}` is neither a source file nor a name in one")
    return found


def references() -> list[Reference]:
    return [ref for hop, where in hops() for ref in references_of(hop, where)]


def python_names(source: str) -> set[str]:
    """Module-level functions, classes and assignments, and `Class.method`s."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            methods = [
                i for i in node.body if isinstance(i, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
            names |= {f"{node.name}.{method.name}" for method in methods}
        elif isinstance(node, ast.Assign):
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


_DECLARED = re.compile(r"\b(?:function|class|const|let|var|interface|type)\s+([A-Za-z_$][\w$]*)")
_CLASS = re.compile(r"\bclass\s+([A-Za-z_$][\w$]*)[^{]*\{")
_METHOD = re.compile(
    r"^\s*(?:(?:public|private|protected|static|async|readonly)\s+)*([A-Za-z_$][\w$]*)\s*\(", re.M
)


def script_names(source: str) -> set[str]:
    """TypeScript (or a .vue file's script): declarations, and `Class.method`s."""
    names = set(_DECLARED.findall(source))
    for opened in _CLASS.finditer(source):
        depth, end = 1, opened.end()
        while depth and end < len(source):
            depth += {"{": 1, "}": -1}.get(source[end], 0)
            end += 1
        body = source[opened.end() : end]
        names |= {f"{opened[1]}.{name}" for name in _METHOD.findall(body)}
    return names


def test_the_path_names_its_hops() -> None:
    found = hops()
    assert len(found) >= 10, f"{DESIGN.name}: '{PATH_SECTION}' has {len(found)} hops"
    bare = [hop for hop, where in found if not references_of(hop, where)]
    assert bare == [], f"hops that name no `file` and `function`: {bare}"


@pytest.mark.parametrize("ref", references(), ids=str)
def test_every_file_and_function_of_the_path_exists(ref: Reference) -> None:
    path = ROOT / ref.file
    assert path.is_file(), (
        f"docs/design.md, {ref}: {ref.file} does not exist (moved?): "
        "point the page at where the hop is now"
    )
    source = path.read_text(encoding="utf-8")
    names = python_names(source) if path.suffix == ".py" else script_names(source)
    assert ref.name in names, (
        f"docs/design.md, {ref}: {ref.file} defines no {ref.name} (renamed or moved?): "
        "point the page at where the hop is now"
    )


# --- lists checked against the code -------------------------------------------------------


@dataclass(frozen=True)
class Marked:
    page: Path
    line: int
    name: str
    text: str  # the paragraph or table after the marker

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line} {self.name}"


def marked() -> list[Marked]:
    found = []
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            opened = MARKER.fullmatch(line.strip())
            if not opened:
                continue
            end = next((i for i in range(number + 1, len(lines)) if not lines[i].strip()), None)
            found.append(Marked(page, number + 1, opened[1], "\n".join(lines[number + 1 : end])))
    return found


def announced_events() -> set[str]:
    """What the code puts on the live stream: every `announce(conn, "kind", ...)` and
    `record_change(conn, "kind", ...)`, and the stream's own `{"type": "stream...."}`."""
    found: set[str] = set()
    for path in production_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            called = node.func.id if isinstance(node.func, ast.Name) else None
            kind = node.args[1]
            if called in ("announce", "record_change") and isinstance(kind, ast.Constant):
                found.add(str(kind.value))
    stream = ast.parse((ROOT / "api" / "stream.py").read_text(encoding="utf-8"))
    for node in ast.walk(stream):
        if isinstance(node, ast.Dict):
            types = [
                v
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and k.value == "type"
            ]
            found |= {
                str(v.value)
                for v in types
                if isinstance(v, ast.Constant) and str(v.value).startswith("stream.")
            }
    return found


TRUTHS = {
    "signal-kinds": lambda: set(KINDS),
    "camera-event-types": lambda: set(CAMERA_EVENT_TYPES),
    "smoke-event-types": lambda: set(get_args(SmokeEventType)),
    "stream-events": announced_events,
}
CHECKED = {*TRUTHS, "error-shape", "error-codes"}


def test_design_marks_every_list_that_is_checked() -> None:
    in_design = {m.name for m in marked() if m.page == DESIGN}
    assert in_design == CHECKED
    unknown = [str(m) for m in marked() if m.name not in CHECKED]
    assert unknown == [], "markers no test reads"


@pytest.mark.parametrize("mark", [m for m in marked() if m.name in TRUTHS], ids=str)
def test_each_marked_list_is_what_the_code_has(mark: Marked) -> None:
    listed = TICKED.findall(mark.text)
    assert len(listed) == len(set(listed)), f"{mark}: listed twice: {listed}"
    truth = TRUTHS[mark.name]()
    missing, extra = sorted(truth - set(listed)), sorted(set(listed) - truth)
    assert not missing and not extra, (
        f"{mark}: in the code but missing from the page: {missing}; "
        f"on the page but not in the code: {extra}"
    )


# --- the error shape and its codes ---------------------------------------------------------


def documented_shape() -> dict[str, Any]:
    [mark] = [m for m in marked() if m.page == DESIGN and m.name == "error-shape"]
    [example] = TICKED.findall(mark.text)
    shape: dict[str, Any] = json.loads(example)
    return shape


def test_the_error_shape_is_the_models() -> None:
    shape = documented_shape()
    assert set(shape) == set(ErrorBody.model_fields)
    assert set(shape["error"]) == set(ErrorDetail.model_fields)
    assert set(shape["error"]["fields"][0]) == set(FieldError.model_fields)


def test_the_api_answers_errors_in_that_shape(admin: httpx.Client) -> None:
    shape = documented_shape()
    invalid = admin.post("/api/v1/areas", json={"code": "44031", "name": "新围社区"})
    missing = admin.get("/api/v1/devices/SD-NOWHERE")
    assert (invalid.status_code, missing.status_code) == (422, 404)
    for answer in (invalid, missing):
        body = answer.json()
        assert set(body) == set(shape)
        assert {"code", "message", "fields"} <= set(body["error"]) <= set(shape["error"])
        for field in body["error"]["fields"]:
            assert set(field) == set(shape["error"]["fields"][0])
    assert invalid.json()["error"]["fields"], "a field at fault is named in `fields`"


# Raised by the commands when a listening address is taken; the API never answers with it.
NOT_AN_ANSWER = {hub.errors.AddressInUse}


def hub_error_codes() -> set[tuple[int, str]]:
    """Each error class of the kernel, as the API answers it."""
    found, classes = set(), [hub.errors.HubError]
    while classes:
        for cls in classes.pop().__subclasses__():
            classes.append(cls)
            if cls.__module__ == "hub.errors" and cls not in NOT_AN_ANSWER:
                found.add((cls.status, cls.code))
    return found


def literal_answer(call: ast.Call) -> tuple[int, str] | None:
    """(status, code) of `JSONResponse(error_body("code", ...), status_code=N)`."""
    body, status = call.args[0], {k.arg: k.value for k in call.keywords}.get("status_code")
    if not (isinstance(body, ast.Call) and getattr(body.func, "id", None) == "error_body"):
        return None
    code = body.args[0]
    if isinstance(code, ast.Constant) and isinstance(status, ast.Constant):
        return int(str(status.value)), str(code.value)
    return None


def handler_codes() -> tuple[set[tuple[int, str]], set[tuple[int, str]]]:
    """From api/errors.py: the answers its handlers always give (`JSONResponse(error_body(
    "code", ...), status_code=N)`), and those its table of HTTP errors may give."""
    tree = ast.parse((ROOT / "api" / "errors.py").read_text(encoding="utf-8"))
    always, table = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "JSONResponse":
            answer = literal_answer(node)
            if answer:
                always.add(answer)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "_HTTP_CODES":
            table |= set(ast.literal_eval(node.value).items())
    return always, table


def test_the_error_codes_are_the_codes() -> None:
    [mark] = [m for m in marked() if m.page == DESIGN and m.name == "error-codes"]
    rows = [cells(row) for row in mark.text.splitlines()]
    documented = {(int(row[0]), row[1].strip("`")) for row in rows if row[0].isdigit()}
    always, table = handler_codes()
    required = hub_error_codes() | always
    missing, extra = sorted(required - documented), sorted(documented - required - table)
    assert not missing and not extra, (
        f"{mark}: answered by the API but missing from the table: {missing}; "
        f"in the table but never answered: {extra}"
    )
