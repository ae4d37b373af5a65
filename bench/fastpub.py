"""A lean MQTT 3.1.1 publisher for load generation: PUBLISH packets are encoded up front and
written in bulk, with a bounded window of unacknowledged QoS 1 messages.

paho's publisher tops out near 8k QoS 1 msgs/s here (its in-flight bookkeeping grows with the
window), which would make it, not the receiver under test, the bottleneck.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

_ACK_POLL = 0.001  # seconds


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def connect_packet(client_id: str, username: str | None, password: str | None) -> bytes:
    flags = 0x02 | (0x80 if username else 0) | (0x40 if password else 0)
    body = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", 60) + _string(client_id)
    if username:
        body += _string(username)
    if password:
        body += _string(password)
    return b"\x10" + varint(len(body)) + body


def publish_packet(topic: str, payload: bytes, qos: int, packet_id: int) -> bytes:
    body = _string(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return bytes([0x30 | (qos << 1)]) + varint(len(body)) + body


class FastPublisher:
    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        *,
        username: str | None = None,
        password: str | None = None,
        window: int = 500,
    ) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(connect_packet(client_id, username, password))
        connack = self._read_exact(4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise ConnectionError(f"CONNACK refused: {connack.hex()}")
        self.window = window
        self.sent = 0
        self.acked = 0
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read_acks, daemon=True)
        self._reader.start()

    def _read_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            data += chunk
        return data

    def _read_acks(self) -> None:
        pending = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            pending += chunk
            # A pure publisher receives only 4-byte PUBACKs.
            count, pending = len(pending) // 4, pending[len(pending) // 4 * 4 :]
            with self._cond:
                self.acked += count
                self._cond.notify_all()
            # PUBACKs trickle in a few at a time; waking for each handful cost the load
            # generator a third of a core. A millisecond's worth at a time is plenty.
            time.sleep(_ACK_POLL)

    def publish_many(self, packets: list[bytes], qos: int) -> None:
        """Send pre-encoded packets, keeping at most `window` QoS 1 messages unacknowledged."""
        i = 0
        while i < len(packets):
            with self._cond:
                if qos:
                    while self.sent - self.acked >= self.window:
                        self._cond.wait()
                room = self.window - (self.sent - self.acked) if qos else len(packets)
            batch = packets[i : i + max(1, min(room, 200))]
            self.sock.sendall(b"".join(batch))
            self.sent += len(batch)
            i += len(batch)

    def drain(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.acked < self.sent and time.monotonic() < deadline:
                self._cond.wait(0.1)

    def close(self) -> None:
        self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        self.sock.close()
