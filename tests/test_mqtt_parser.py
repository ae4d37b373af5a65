"""The receiver's fast-path packet parser against paho's own decoder: generated PUBLISH
packets (any topic, payload, QoS 0/1, retain, MQTT 5 properties or none, remaining lengths of
1 to 4 bytes), cut at random points as reads return them, must come out of BatchingClient's
`on_delivery` exactly as they come out of a stock paho client's `on_message`. And random or
mangled bytes never raise."""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.client import _ConnectionState  # type: ignore[attr-defined]
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from bench.fastpub import varint
from ingest.mqtt_client import BatchingClient, BufferedSocket

Message = tuple[str, bytes, int, bool, int]  # topic, payload, qos, retain, mid


class ScriptedSocket:
    """A socket whose reads return the given chunks one by one, then "nothing yet"."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.sent = bytearray()

    def recv(self, bufsize: int) -> bytes:
        if not self.chunks:
            raise BlockingIOError
        chunk = self.chunks.pop(0)
        if len(chunk) > bufsize:
            self.chunks.insert(0, chunk[bufsize:])
            chunk = chunk[:bufsize]
        return chunk

    def send(self, data: bytes | bytearray) -> int:
        self.sent += data
        return len(data)

    def pending(self) -> int:
        return 0

    def fileno(self) -> int:
        return -1

    def setblocking(self, flag: bool) -> None:
        pass

    def close(self) -> None:
        pass


def publish(message: Message, v5: bool, user_property: str | None) -> bytes:
    topic, payload, qos, retain, mid = message
    encoded = topic.encode()
    body = struct.pack("!H", len(encoded)) + encoded
    if qos:
        body += struct.pack("!H", mid)
    if v5:
        if user_property is None:
            body += b"\x00"
        else:
            key, value = b"k", user_property.encode()
            prop = (
                b"\x26" + struct.pack("!H", len(key)) + key + struct.pack("!H", len(value)) + value
            )
            body += varint(len(prop)) + prop
    body += payload
    header = 0x30 | (qos << 1) | (0x01 if retain else 0)
    return bytes([header]) + varint(len(body)) + body


@dataclass
class Fed:
    got: list[Message] = field(default_factory=list)


def decode(stream: list[bytes], v5: bool, *, fast: bool) -> list[Message]:
    """Feed the chunks to a client as reads would, and collect what it delivers."""
    protocol = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
    cls: Any = BatchingClient if fast else mqtt.Client
    client = cls(CallbackAPIVersion.VERSION2, client_id="p", protocol=protocol, manual_ack=True)
    fed = Fed()
    if fast:
        client.on_delivery = lambda t, p, mid, q, r: fed.got.append((t, p, q, r, mid))
        client._sock = BufferedSocket(ScriptedSocket(stream))
    else:
        client.on_message = lambda c, u, m: fed.got.append(
            (m.topic, m.payload, m.qos, m.retain, m.mid if m.qos else 0)
        )
        client._sock = ScriptedSocket(stream)
    client._state = _ConnectionState.MQTT_CS_CONNECTED
    # A stray CONNACK makes paho reconnect (to fall back to MQTT 3.1): network behaviour, not
    # parsing, and there is no broker here.
    client.reconnect = lambda: MQTTErrorCode.MQTT_ERR_NO_CONN
    for _ in range(10 * len(stream) + 10):
        if client._sock is None:
            break
        client.loop_read()
    return fed.got


topics = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00+#"),
                 min_size=1, max_size=60)  # fmt: skip
payloads = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([126, 127, 128, 16382, 16383, 16384, 70_000]).map(lambda n: b"x" * n),
)
# MQTT strings may not hold U+0000 (paho refuses such a packet, rightly).
properties = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
                     max_size=20)  # fmt: skip
messages = st.tuples(topics, payloads, st.sampled_from([0, 1]), st.booleans(),
                     st.integers(min_value=1, max_value=65535))  # fmt: skip


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    batch=st.lists(st.tuples(messages, st.one_of(st.none(), properties)), min_size=1, max_size=12),
    v5=st.booleans(),
    points=st.lists(st.integers(min_value=0, max_value=10**6), max_size=15),
)  # fmt: skip
def test_the_fast_path_delivers_what_paho_decodes(
    batch: list[tuple[Message, str | None]], v5: bool, points: list[int]
) -> None:
    packets = [((*m[:4], m[4] if m[2] else 0), prop if v5 else None) for m, prop in batch]
    stream = b"".join(publish(m, v5, prop) for m, prop in packets)
    chunks = cut(stream, points)
    expected = decode(chunks, v5, fast=False)
    assert expected == [m for m, _ in packets]  # the encoder is right, by paho's reading
    assert decode(chunks, v5, fast=True) == expected


def test_a_four_byte_remaining_length() -> None:
    big: Message = ("sb/440311001002/SD-1/telemetry", b"y" * 2_100_000, 1, False, 7)
    stream = publish(big, True, None)
    assert stream[1:5][-1] < 0x80 and all(b & 0x80 for b in stream[1:4])  # four bytes
    chunks = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]
    assert decode(chunks, True, fast=True) == decode(chunks, True, fast=False) == [big]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=2000), v5=st.booleans(),
       points=st.lists(st.integers(min_value=0, max_value=4000), max_size=10))  # fmt: skip
def test_random_bytes_never_raise(data: bytes, v5: bool, points: list[int]) -> None:
    decode(cut(data, points), v5, fast=True)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(message=messages, v5=st.booleans(), flips=st.lists(st.tuples(st.integers(0, 10**6),
       st.integers(0, 255)), min_size=1, max_size=4))  # fmt: skip
def test_mangled_packets_never_raise(
    message: Message, v5: bool, flips: list[tuple[int, int]]
) -> None:
    stream = bytearray(publish(message, v5, None) * 2)
    for where, value in flips:
        stream[where % len(stream)] = value
    decode([bytes(stream)], v5, fast=True)
