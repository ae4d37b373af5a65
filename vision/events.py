"""What the analytics report: one event per track and zone episode, with what to draw on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Box = tuple[float, float, float, float]  # normalised xyxy
Point = tuple[float, float]


@dataclass(slots=True)
class Event:
    type: str  # the camera event types of design §2
    ts: float  # epoch seconds of the frame that decided it
    confidence: float = 1.0
    zone: str | None = None
    track_id: int | None = None
    count: int | None = None
    bbox: Box | None = None
    direction: str | None = None
    reason: str | None = None
    # For the evidence picture: labelled boxes and the zone outline.
    marks: list[tuple[Box, str]] = field(default_factory=list)
    outline: list[Point] | None = None

    def payload(self, seq: int, evidence: str | None) -> dict[str, Any]:
        """The MQTT event payload (design §2), without empty fields."""
        body: dict[str, Any] = {
            "seq": seq,
            "ts": round(self.ts * 1000),
            "type": self.type,
            "confidence": round(min(max(self.confidence, 0.0), 1.0), 3),
            "zone": self.zone,
            "track_id": self.track_id,
            "count": self.count,
            "bbox": [round(v, 4) for v in self.bbox] if self.bbox else None,
            "evidence": evidence,
            "direction": self.direction,
            "reason": self.reason,
        }
        return {k: v for k, v in body.items() if v is not None}
