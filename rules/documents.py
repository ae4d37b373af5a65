"""Rule documents as uploaded: JSON or YAML text, bounded before anything else looks at it.

A rule is evaluated against every signal, so a document that is huge, deeply nested or built
from YAML aliases (a few hundred bytes can expand to megabytes) is refused at the door, with
the limit it broke, rather than stored and then slowing or breaking every request.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from hub.json_depth import TooDeep, check_nesting

MAX_BYTES = 64 * 1024
MAX_DEPTH = 16  # objects and lists inside each other
MAX_NODES = 2_000  # values of any kind in the whole document


class DocumentError(ValueError):
    """The document cannot be a rule; the message says why (and names the limit)."""


class _NoAliases(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases: `*name` is how an alias bomb multiplies."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise DocumentError(
                f"YAML aliases (*{event.anchor}) are not accepted in rules"
                f" (line {event.start_mark.line + 1})"
            )
        return super().compose_node(parent, index)


def parse(raw: bytes, *, yaml_text: bool) -> Any:
    """The document in `raw` (YAML when `yaml_text`, else JSON), within the limits."""
    if len(raw) > MAX_BYTES:
        raise DocumentError(f"a rule document is at most {MAX_BYTES} bytes, got {len(raw)}")
    try:
        if yaml_text:
            document = yaml.load(raw, Loader=_NoAliases)  # noqa: S506 - a safe loader
        else:
            check_nesting(raw, MAX_DEPTH)
            document = json.loads(raw)
    except DocumentError:
        raise
    except TooDeep as exc:
        raise DocumentError(str(exc)) from None
    except (ValueError, yaml.YAMLError) as exc:
        kind = "YAML" if yaml_text else "JSON"
        raise DocumentError(f"body is not valid {kind}: {exc}") from None
    check_structure(document)
    return document


def check_structure(document: Any) -> None:
    """Depth and node count, walked without recursion."""
    nodes = 0
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise DocumentError(f"a rule document has at most {MAX_NODES} values")
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise DocumentError(f"a rule document nests at most {MAX_DEPTH} levels")
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
