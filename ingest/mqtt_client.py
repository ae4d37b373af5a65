"""A paho client with batched socket I/O, for a subscriber taking tens of thousands of msgs/s.

paho reads each packet with three or four `recv()` calls (one per header byte, then the body)
and a `select()`, and sends each PUBACK on its own after waking its loop through a socket pair:
about eight system calls per QoS 1 message. Under MQTT 5 it also builds a `Properties` object
for every PUBLISH, properties or not, which costs more than everything else together. This
client keeps paho's protocol and session handling and changes only those hot spots: reads are
served from a 64 KiB buffer and a whole buffer is parsed per loop turn, a batch of PUBACKs goes
out as one write, and a QoS 0/1 PUBLISH without properties (every device message) is decoded
directly. Anything else (QoS 2, properties, a packet cut by the end of a read) goes through
paho's own code.

With `on_delivery` set, messages skip paho's `MQTTMessage` (a lock and a condition variable
each) and its topic-filter matching: complete PUBLISH packets are taken straight from the
buffer and handed over as (topic, payload, mid, qos).

Over TLS, where a read returns one record and mosquitto sends a record per packet, the buffer
gathers every record already readable, so the fast path sees many packets there too.

It also turns off delayed TCP acknowledgements on Linux (TCP_QUICKACK, re-armed after every
read), so a broker that keeps Nagle's algorithm on does not hold an alarm back for up to 40 ms.

It overrides paho internals (`_create_socket`, `_handle_publish`, `_handle_on_message`), calls
`_packet_queue` and `_send_puback`, and reads `_in_packet`, `_sock`, `_protocol`, `_manual_ack`,
`_msgtime_mutex` and `_last_bytes_received`. So it works with the one paho minor release it is
tested with: pyproject pins it, and importing this module with another fails loudly.
tests/test_mqtt_client.py runs every path; tests/test_mqtt_parser.py checks the parser against
paho's own decoder on generated packets and random cuts of the byte stream.
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode, MQTTProtocolVersion

TESTED_PAHO = "2.2."
if not paho.mqtt.__version__.startswith(TESTED_PAHO):
    raise ImportError(
        f"ingest.mqtt_client reaches into paho-mqtt {TESTED_PAHO}x and found"
        f" {paho.mqtt.__version__}: install paho-mqtt~={TESTED_PAHO}0"
    )

# Acknowledge TCP segments at once. A broker that leaves Nagle's algorithm on (mosquitto's
# default: set_tcp_nodelay false) holds a small PUBLISH back until its previous segment is
# acknowledged, and Linux delays ACKs by up to 40 ms: an alarm could wait that long behind
# telemetry. Linux only; elsewhere the broker's set_tcp_nodelay is the remedy.
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
_PUBACK = 0x40
_PUBLISH = 0x30
_READ_SIZE = 65536
# Packets parsed per loop turn at most, so keepalive and outgoing acks still get their turn.
_MAX_PACKETS_PER_READ = 2000
# topic, payload, packet id, QoS, retain (a retained message replayed on subscribing)
Delivery = Callable[[str, bytes, int, int, bool], None]


class BufferedSocket:
    """paho's `SocketLike` over a connected socket, reading ahead in 64 KiB chunks."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        tcp = getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6)
        self._quickack = _QUICKACK if tcp else None
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._buffer = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        if self._pos >= len(self._buffer):
            # Raises BlockingIOError when nothing is waiting, which paho expects.
            chunk = self._sock.recv(max(bufsize, _READ_SIZE))
            if not chunk:
                return b""
            if self._tls and self._sock.gettimeout() == 0.0:
                chunk = self._more_records(chunk)
            if self._quickack:
                # Linux drops back to delayed ACKs after a while; re-arm after every read.
                self._sock.setsockopt(socket.IPPROTO_TCP, self._quickack, 1)
            self._buffer, self._pos = chunk, 0
        end = self._pos + bufsize
        data = self._buffer[self._pos : end]
        self._pos = min(end, len(self._buffer))
        return data

    def _more_records(self, first: bytes) -> bytes:
        """A TLS recv returns one record, and mosquitto sends a record per packet: take every
        record already readable, so that one buffer holds many packets here too."""
        parts, size = [first], len(first)
        while size < _READ_SIZE:
            try:
                more = self._sock.recv(_READ_SIZE - size)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                break
            if not more:
                break  # closed: the next recv says so
            parts.append(more)
            size += len(more)
        return b"".join(parts)

    def unread(self) -> tuple[bytes, int]:
        """The read-ahead buffer and the position of its first byte not yet consumed."""
        return self._buffer, self._pos

    def consume_to(self, pos: int) -> None:
        self._pos = pos

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

    def __init__(self, *args: Any, on_delivery: Delivery | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # When set, every message goes here instead of to on_message.
        self.on_delivery = on_delivery
        # When set and true, the fast path stops delivering and leaves the rest in the
        # buffer (see `buffered`), so that a consumer with enough in hand gets no more.
        self.paused: Callable[[], bool] | None = None

    def buffered(self) -> bool:
        """Bytes already read from the socket and not yet handled."""
        sock = self._sock
        return isinstance(sock, BufferedSocket) and sock.pending() > 0

    def _create_socket(self) -> Any:
        return BufferedSocket(super()._create_socket())

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        # paho reads one packet per select(); keep going while the buffer holds more.
        sock = self._sock
        rc = super().loop_read(max_packets)
        if not isinstance(sock, BufferedSocket):
            return rc
        turns = 1
        while (
            rc == MQTTErrorCode.MQTT_ERR_SUCCESS
            and self._reading_from(sock)
            and turns < _MAX_PACKETS_PER_READ
            and not (self.paused and self.paused())
        ):
            if self.on_delivery is not None and self._in_packet["command"] == 0:
                turns += self._deliver_buffered(sock, self.on_delivery)
            if sock.pending() == 0 or (self.paused and self.paused()):
                break
            rc = super().loop_read(max_packets)  # a packet the fast path leaves to paho
            turns += 1
        return rc

    def _reading_from(self, sock: BufferedSocket) -> bool:
        """False once paho has dropped or replaced the socket (a disconnect, a reconnect)."""
        return self._sock is sock

    def _deliver_buffered(self, sock: BufferedSocket, deliver: Delivery) -> int:
        """Hand over the complete QoS 0/1 PUBLISH packets at the head of the buffer; stops at
        the first packet of another kind, with properties, or not wholly read. Returns how
        many were delivered."""
        buffer, pos = sock.unread()
        end = len(buffer)
        v5 = self._protocol == MQTTProtocolVersion.MQTTv5
        manual_ack = self._manual_ack
        paused = self.paused
        delivered = 0
        while pos + 2 <= end and delivered < _MAX_PACKETS_PER_READ:
            if paused is not None and paused():
                break
            header = buffer[pos]
            qos = (header & 0x06) >> 1
            if header & 0xF0 != _PUBLISH or qos == 2:
                break
            length, start = _remaining_length(buffer, pos + 1, end)
            stop = start + length
            if length < 0 or stop > end:
                break  # cut by the end of the read: paho's code reads the rest
            parts = _plain_publish(buffer, start, stop, qos, v5)
            if parts is None:
                break  # properties, or malformed: paho's code decides
            topic_end, mid, body = parts
            topic = buffer[start + 2 : topic_end].decode("utf-8", errors="replace")
            deliver(topic, buffer[body:stop], mid, qos, bool(header & 0x01))
            if qos and not manual_ack:
                self._send_puback(mid)
            pos = stop
            delivered += 1
        if delivered:
            sock.consume_to(pos)
            with self._msgtime_mutex:
                self._last_bytes_received = mqtt.time_func()
        return delivered

    def _handle_publish(self) -> MQTTErrorCode:
        header: int = self._in_packet["command"]
        packet: bytes | bytearray = self._in_packet["packet"]
        qos = (header & 0x06) >> 1
        if self._protocol != MQTTProtocolVersion.MQTTv5 or qos == 2:
            return super()._handle_publish()
        parts = _plain_publish(packet, 0, len(packet), qos, v5=True)
        if parts is None:
            return super()._handle_publish()  # properties present (or a malformed packet)
        topic_end, mid, body = parts
        message = mqtt.MQTTMessage(mid=mid, topic=bytes(packet[2:topic_end]))
        message.dup = bool(header & 0x08)
        message.qos = qos
        message.retain = bool(header & 0x01)
        message.payload = bytes(packet[body:])
        message.timestamp = mqtt.time_func()
        self._handle_on_message(message)
        if qos and not self._manual_ack:
            return self._send_puback(mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_on_message(self, message: mqtt.MQTTMessage) -> None:
        if self.on_delivery is None:
            super()._handle_on_message(message)
            return
        topic = message._topic.decode("utf-8", errors="replace")
        self.on_delivery(topic, bytes(message.payload), message.mid, message.qos, message.retain)

    def ack_many(self, mids: Iterable[int]) -> MQTTErrorCode:
        """Acknowledge QoS 1 messages (manual_ack mode) with one write for all of them."""
        packet = b"".join(struct.pack("!BBH", _PUBACK, 2, mid) for mid in mids)
        if not packet:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        # One queued entry holding many PUBACKs: paho writes it as it would one packet.
        rc: MQTTErrorCode = self._packet_queue(_PUBACK, packet, 0, 0)
        return rc


def _plain_publish(
    data: bytes | bytearray, start: int, stop: int, qos: int, v5: bool
) -> tuple[int, int, int] | None:
    """Where the parts of a QoS 0/1 PUBLISH body `data[start:stop]` lie: (end of the topic,
    packet id, start of the payload); None when it carries MQTT 5 properties or is too short
    to be a PUBLISH, which paho's own code handles."""
    if stop - start < 2:
        return None
    topic_end = start + 2 + ((data[start] << 8) | data[start + 1])
    body = topic_end + (2 if qos else 0)
    if body + v5 > stop:
        return None
    mid = (data[topic_end] << 8) | data[topic_end + 1] if qos else 0
    if v5:
        if data[body] != 0:
            return None
        body += 1
    return topic_end, mid, body


def _remaining_length(buffer: bytes, pos: int, end: int) -> tuple[int, int]:
    """MQTT's variable-length integer at `pos`: (value, position after it). A length that is
    not wholly in the buffer, or longer than the four bytes MQTT allows, reads as -1."""
    value = 0
    for shift in (0, 7, 14, 21):
        if pos >= end:
            return -1, pos
        byte = buffer[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
    return -1, pos
