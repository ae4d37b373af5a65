"""The MQTT receiver on its own, against a real broker: it stops reading at its bound, keeps
acknowledging while it waits, and a new session gets exactly what was not acknowledged."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Any

from hub.settings import MqttUrl
from ingest import metrics as ingest_metrics
from ingest.receiver import CONNECTED, MESSAGES, Receiver, SessionConfig
from tests.eventually import eventually
from tests.ingest_helpers import Publisher

TOPIC = "sb/440311001002/SD-R/telemetry"


@contextmanager
def receiver(
    broker: MqttUrl, client_id: str, bound: int
) -> Iterator[tuple[Connection, Connection]]:
    """A Receiver in a thread; yields (deliveries in, commits out) once it is subscribed."""
    messages_in, messages_out = Pipe(duplex=False)
    acks_in, acks_out = Pipe(duplex=False)
    config = SessionConfig(mqtt=broker, client_id=client_id, subscription=TOPIC, mqtt_v5=True,
                           receive_maximum=1000, flush_interval=0.005, max_in_hand=bound)  # fmt: skip
    running = Receiver(config, messages_out, acks_in)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    kind, _ = messages_in.recv()
    assert kind == CONNECTED
    time.sleep(0.3)  # the SUBSCRIBE is on its way
    try:
        yield messages_in, acks_out
    finally:
        running._stop()
        thread.join(timeout=10)


def received(pipe: Connection, wait: float) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if pipe.poll(0.05):
            kind, body = pipe.recv()
            if kind == MESSAGES:
                got += body[1]
    return got


def test_it_stops_reading_at_its_bound_and_acknowledges_meanwhile(queueing_broker: MqttUrl) -> None:
    client_id = f"test-receiver-{uuid.uuid4().hex[:6]}"
    with receiver(queueing_broker, client_id, bound=5) as (deliveries, commits):
        pub = Publisher(queueing_broker, in_flight=30)
        for seq in range(30):
            pub.client.publish(TOPIC, b'{"seq": %d}' % seq, qos=1)
        first = received(deliveries, 1.0)
        assert len(first) == 5  # and no more: the bound holds
        # Commit three: their PUBACKs go out, and three more come in (not one more).
        commits.send((3, [(mid, qos, gen) for _, _, _, mid, qos, gen in first[:3]]))
        second = received(deliveries, 1.0)
        assert len(second) == 3
        pub.close()
    # A new session with the same id: the broker resends what was never acknowledged, so the
    # three acknowledged while the receiver was at its bound are not among them.
    with receiver(queueing_broker, client_id, bound=100) as (deliveries, _):
        again = received(deliveries, 1.5)
    resent = {payload for _, payload, *_ in again}
    acknowledged = {payload for _, payload, *_ in first[:3]}
    assert len(again) == 27 and not resent & acknowledged


def handled() -> float:
    """The uplinks this process's ingest has handled (written or refused), all told."""
    metrics = ingest_metrics.MESSAGES.collect()
    return sum(s.value for m in metrics for s in m.samples if s.name.endswith("_total"))


def test_a_retained_status_replay_is_not_a_sign_of_life(
    admin: Any, database_url: str, queueing_broker: MqttUrl
) -> None:
    import psycopg

    from tests.ingest_helpers import running_consumer, wait_for
    from tests.test_registry_api import COMMUNITY, register_area

    register_area(admin)
    admin.post("/api/v1/devices", json={"id": "SD-RT", "type": "smoke_sensor", "area": COMMUNITY})
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO device_state (device_id, last_seen, online, offline_since,"
            " reported_offline) VALUES ('SD-RT', now() - interval '2 days', false,"
            " now() - interval '1 day', true)"
        )
    status = f"sb/{COMMUNITY}/SD-RT/status"
    pub = Publisher(queueing_broker)
    pub.send(status, {"online": True, "fw": "1.0"}, retain=True)  # an old message, retained
    before = handled()
    with running_consumer(database_url, queueing_broker):  # a new session: the broker replays it
        # Proof the replay was handled (its batch written) before saying it changed nothing.
        eventually(handled, lambda n: n > before, what="the replayed status handled")
        with psycopg.connect(database_url) as conn:
            state = conn.execute(
                "SELECT online, reported_offline, last_seen < now() - interval '1 day'"
                " FROM device_state WHERE device_id = 'SD-RT'"
            ).fetchone()
            signals = conn.execute("SELECT count(*) FROM signals").fetchone()
        assert state == (False, True, True) and signals == (0,)
        pub.send(status, {"online": True, "fw": "1.1"})  # a live one is news
        wait_for(database_url, "SELECT kind FROM signals", lambda k: k == "device_online")
    pub.close()
