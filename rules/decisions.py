"""An engine decision as the incidents package takes it: an incident to open, or signals to
attach to the open one."""

from __future__ import annotations

from typing import Any

from hub.contracts import Signal
from hub.names import KINDS, floor_name, name_of
from incidents.models import Attachment, NewIncident
from rules.engine import Decision


def incident_title(decision: Decision) -> str:
    rule, signal = decision.rule, decision.signal
    fields = {
        "site": signal.site or "",
        "building": signal.building or "",
        "floor": floor_name(signal.floor),
        "area": signal.area,
        "source_id": signal.source_id,
        "kind": signal.kind,
        "kind_name": name_of(KINDS, signal.kind),
        "count": people_or_signals(decision),
        "signals": decision.count,
        "zone": signal.attrs.get("zone") or "",
        "description": str(signal.attrs.get("description") or name_of(KINDS, signal.kind))[:200],
    }
    # A place the signal does not name leaves its placeholder empty: one space between words.
    return " ".join(rule.incident.title.format(**fields).split())


def people_or_signals(decision: Decision) -> int:
    """`{count}`: the people a crowd signal counted (its `attrs.count`), else the signals."""
    counted = decision.signal.attrs.get("count")
    if decision.signal.kind == "crowd" and isinstance(counted, int | float):
        return int(counted)
    return decision.count


def new_incident(decision: Decision) -> NewIncident:
    rule, signal = decision.rule, decision.signal
    return NewIncident(
        rule_id=rule.id,
        rule_version=decision.rule_version,
        group_key=decision.key,
        category=rule.incident.category,
        priority=decision.priority,
        area=signal.area,
        site=signal.site,
        building=signal.building,
        floor=signal.floor,
        title=incident_title(decision),
        first_signal_at=min(s.ts for s in decision.signals),
        last_signal_at=max(s.ts for s in decision.signals),
        signal_ids=[s.id for s in decision.signals if s.id is not None],
        signal_count=decision.count,
        dispatch=rule.incident.dispatch,
        evidence=[evidence_of(s) for s in decision.signals],
        source_id=signal.source_id,
    )


def attachment(decision: Decision) -> Attachment:
    signal = decision.signal
    return Attachment(
        rule_id=decision.rule.id,
        group_key=decision.key,
        priority=decision.priority,
        signal_at=signal.ts,
        signal_ids=[signal.id] if signal.id is not None else [],
        evidence=[evidence_of(signal)],
    )


def evidence_of(signal: Signal) -> dict[str, Any]:
    return {
        "ts": signal.ts.isoformat(),
        "kind": signal.kind,
        "source_id": signal.source_id,
        **({"signal_id": signal.id} if signal.id is not None else {}),
        **({"evidence": signal.attrs["evidence"]} if "evidence" in signal.attrs else {}),
    }
