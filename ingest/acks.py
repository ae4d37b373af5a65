"""Acknowledgements in arrival order, whichever batch commits first."""

from __future__ import annotations

from collections.abc import Iterable


class AckSequencer:
    """Releases acknowledgements in arrival order (as MQTT requires), whichever lane
    committed its messages first."""

    def __init__(self) -> None:
        self._next = 0  # arrival number of the next message
        self._first_unacked = 0
        self._waiting: dict[int, tuple[int, int, int]] = {}  # order → (mid, qos, generation)
        self._done: set[int] = set()

    def __len__(self) -> int:
        """Messages arrived and not yet committed."""
        return len(self._waiting)

    def arrived(self, ack: tuple[int, int, int]) -> int:
        """Register a message by its (mid, qos, generation); returns its arrival number."""
        order = self._next
        self._next += 1
        self._waiting[order] = ack
        return order

    def committed(self, orders: Iterable[int]) -> list[tuple[int, int, int]]:
        """Mark messages committed; returns the (mid, qos, generation) now free to ack."""
        self._done.update(orders)
        ready = []
        while self._first_unacked in self._done:
            self._done.discard(self._first_unacked)
            ack = self._waiting.pop(self._first_unacked)
            if ack[1] > 0:  # QoS 0 is not acknowledged
                ready.append(ack)
            self._first_unacked += 1
        return ready
