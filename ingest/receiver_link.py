"""The ingest process's end of the MQTT receiver: a child process and two pipes.

The receiver (`ingest.receiver`) holds the MQTT session and sends batches of deliveries down
one pipe; acknowledgements for committed messages go back up the other. This side starts the
child, reads the pipe on the event loop and hands each delivery to a callback, and says when
the session is connected and when the child has gone.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from hub.logs import get_logger
from ingest.receiver import CONNECTED, MESSAGES, Ack, Delivered, SessionConfig, run_receiver

log = get_logger(__name__)
# Called for every delivery, with the time its batch left the receiver.
OnDelivery = Callable[[datetime, Delivered], None]


class ReceiverLink:
    def __init__(
        self, session: SessionConfig, on_delivery: OnDelivery, on_gone: Callable[[], None]
    ) -> None:
        self.session = session
        self.on_delivery = on_delivery
        self.on_gone = on_gone
        self.connected = asyncio.Event()
        self.gone = asyncio.Event()
        self.changed = asyncio.Event()  # set at every connect, disconnect or exit
        self.disconnect_reason = "not connected yet"
        self._child: BaseProcess | None = None
        self._messages: Connection | None = None
        self._acks: Connection | None = None

    def start(self) -> None:
        ctx = mp.get_context("spawn")  # this process has threads; fork would copy their locks
        messages_in, messages_out = ctx.Pipe(duplex=False)  # (receiving end, sending end)
        acks_in, acks_out = ctx.Pipe(duplex=False)
        self._child = ctx.Process(
            target=run_receiver,
            args=(self.session, messages_out, acks_in),
            name="mqtt-receiver",
            daemon=True,
        )
        self._child.start()
        messages_out.close()
        acks_in.close()
        self._messages, self._acks = messages_in, acks_out
        asyncio.get_running_loop().add_reader(messages_in.fileno(), self._on_pipe)

    def acknowledge(self, committed: int, acks: list[Ack]) -> None:
        """`committed` messages (any QoS) are stored; `acks` are the PUBACKs now due."""
        assert self._acks is not None
        try:
            self._acks.send((committed, acks))
        except (BrokenPipeError, OSError):
            self._mark_gone()

    def close(self) -> None:
        if self._messages is not None:
            asyncio.get_running_loop().remove_reader(self._messages.fileno())
            self._messages.close()
        if self._acks is not None:
            self._acks.close()
        if self._child is not None:
            self._child.join(timeout=5)
            if self._child.is_alive():
                self._child.terminate()

    def _on_pipe(self) -> None:
        assert self._messages is not None
        try:
            kind, body = self._messages.recv()
        except (EOFError, OSError):
            self._mark_gone()
            return
        if kind == MESSAGES:
            epoch, delivered = body
            received_at = datetime.fromtimestamp(epoch, UTC)
            for delivery in delivered:
                self.on_delivery(received_at, delivery)
        elif kind == CONNECTED:
            log.info("MQTT connected", subscription=body)
            self.connected.set()
            self.changed.set()
        else:
            log.warning("MQTT disconnected; reconnecting", reason=body)
            self.disconnect_reason = str(body)
            self.connected.clear()
            self.changed.set()

    def _mark_gone(self) -> None:
        if self._messages is not None:
            asyncio.get_running_loop().remove_reader(self._messages.fileno())
        self.connected.clear()
        self.disconnect_reason = "the receiver process exited"
        self.gone.set()
        self.changed.set()
        self.on_gone()
