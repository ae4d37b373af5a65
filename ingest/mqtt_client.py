"""A paho client with batched socket I/O, for a subscriber taking tens of thousands of msgs/s.

paho reads each packet with three or four `recv()` calls (one per header byte, then the body)
and a `select()`, and sends each PUBACK on its own after waking its loop through a socket pair:
about eight system calls per QoS 1 message. Under MQTT 5 it also builds a `Properties` object
for every PUBLISH, properties or not, which costs more than everything else together. This
client keeps paho's protocol and session handling and changes only those hot spots: reads are
served from a 64 KiB buffer and a whole buffer is parsed per loop turn, a batch of PUBACKs goes
out as one write, and a QoS 0/1 PUBLISH without properties (every device message) is decoded
directly. Anything else (QoS 2, properties, MQTT 3.1.1) goes through paho's own code.

It overrides three of paho's internals (`_create_socket`, `_handle_publish`, `_packet_queue`),
so pyproject pins paho-mqtt below its next minor release; the ingest tests run all three.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion

_PUBACK = 0x40
_READ_SIZE = 65536
# Packets parsed per loop turn at most, so keepalive and outgoing acks still get their turn.
_MAX_PACKETS_PER_READ = 2000


class BufferedSocket:
    """paho's `SocketLike` over a connected socket, reading ahead in 64 KiB chunks."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buffer = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        if self._pos >= len(self._buffer):
            # Raises BlockingIOError when nothing is waiting, which paho expects.
            chunk = self._sock.recv(max(bufsize, _READ_SIZE))
            if not chunk:
                return b""
            self._buffer, self._pos = chunk, 0
        end = self._pos + bufsize
        data = self._buffer[self._pos : end]
        self._pos = min(end, len(self._buffer))
        return data

    def pending(self) -> int:
        """Bytes already read but not yet handed to paho (plus TLS's own, if any)."""
        tls = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._buffer) - self._pos + tls

    def send(self, data: bytes | bytearray) -> int:
        sent: int = self._sock.send(data)
        return sent

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int:
        fd: int = self._sock.fileno()
        return fd

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)


class BatchingClient(mqtt.Client):
    """`paho.mqtt.client.Client` with buffered reads and batched PUBACKs."""

    def _create_socket(self) -> Any:
        return BufferedSocket(super()._create_socket())

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        # paho reads one packet per select(); keep going while the buffer holds more.
        rc = super().loop_read(max_packets)
        turns = 1
        while (
            rc == MQTTErrorCode.MQTT_ERR_SUCCESS
            and isinstance(self._sock, BufferedSocket)
            and self._sock.pending() > 0
            and turns < _MAX_PACKETS_PER_READ
        ):
            rc = super().loop_read(max_packets)
            turns += 1
        return rc

    def _handle_publish(self) -> MQTTErrorCode:
        header: int = self._in_packet["command"]
        packet: bytes | bytearray = self._in_packet["packet"]
        qos = (header & 0x06) >> 1
        if self._protocol != MQTTProtocolVersion.MQTTv5 or qos == 2:
            return super()._handle_publish()
        (topic_length,) = struct.unpack_from("!H", packet, 0)
        pos = 2 + topic_length
        mid = 0
        if qos:
            (mid,) = struct.unpack_from("!H", packet, pos)
            pos += 2
        if pos >= len(packet) or packet[pos] != 0:
            return super()._handle_publish()  # properties present (or a malformed packet)
        message = mqtt.MQTTMessage(mid=mid, topic=bytes(packet[2 : 2 + topic_length]))
        message.dup = bool(header & 0x08)
        message.qos = qos
        message.retain = bool(header & 0x01)
        message.payload = bytes(packet[pos + 1 :])
        message.timestamp = time.monotonic()
        self._handle_on_message(message)
        if qos and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids: Iterable[int]) -> MQTTErrorCode:
        """Acknowledge QoS 1 messages (manual_ack mode) with one write for all of them."""
        packet = b"".join(struct.pack("!BBH", _PUBACK, 2, mid) for mid in mids)
        if not packet:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        # One queued entry holding many PUBACKs: paho writes it as it would one packet.
        rc: MQTTErrorCode = self._packet_queue(_PUBACK, packet, 0, 0)
        return rc
