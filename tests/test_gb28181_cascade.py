"""Four-level networking: the hub as a lower platform of an upper GB/T 28181 platform. sipp
plays the upper platform: it challenges the hub's REGISTER and checks the digest (verifyauth),
answers keepalives, queries the catalog and receives every page, receives forwarded alarms;
it restarts; a wrong password is a 403 on the uplink's status."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from gb28181.sip import SipRequest, Timers, build_request
from gb28181.sip.message import new_branch
from hub import signal_log
from hub.contracts import Signal
from hub.secret import hmac_key
from hub.settings import Settings
from tests.gb_helpers import Peer, free_port, gb_running
from tests.hub_processes import HubProcess, hub_env
from tests.rules_helpers import running_rules

SIPP = shutil.which("sipp")
SCENARIOS = Path(__file__).parent / "sipp"
UPPER_ID = "44030000002000000001"
UPPER_REALM = UPPER_ID[:10]
LOCAL_ID = "44031100012000000001"
PASSWORD = "upper-gave-this"
DISTRICT, STREET, COMMUNITY = "440311", "440311001", "440311001001"
SENSORS = 12
pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp missing: apt-get install sip-tester")


@pytest.fixture
def clean_uplinks(database_url: str, clean_registry: None) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE gb28181_uplinks, gb28181_uplink_status, gb28181_cascade_outbox,"
            " gb28181_uplink_deliveries CASCADE"
        )


class Upper:
    """sipp as the upper platform, on a port of its own, tracing every message."""

    def __init__(self, tmp: Path, password: str, clock_ahead: timedelta) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.traces: list[Path] = []
        self.password = password
        self.clock_ahead = clock_ahead
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        assert SIPP is not None
        date = (datetime.now(ZoneInfo("Asia/Shanghai")) + self.clock_ahead).strftime(
            "%Y-%m-%dT%H:%M:%S.000"
        )
        trace = self.tmp / f"upper-{len(self.traces)}.log"
        self.traces.append(trace)
        args = [SIPP, "-sf", str(SCENARIOS / "gb_upper.xml"), "-t", "u1", "-i", "127.0.0.1",
                "-p", str(self.port), "-key", "local", LOCAL_ID, "-key", "pw", self.password,
                "-key", "upper", UPPER_ID, "-key", "realm", UPPER_REALM, "-key", "gbdate", date,
                "-trace_msg", "-message_file", str(trace), "-nostdin"]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     text=True, cwd=SCENARIOS)  # fmt: skip
        _until(lambda: trace.exists() or self.proc is None or self.proc.poll() is not None,
               "sipp started")  # fmt: skip

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def text(self) -> str:
        """Every message sipp traced, all its runs."""
        return "".join(
            t.read_bytes().decode("gb18030", errors="replace") for t in self.traces if t.exists()
        )

    def received(self, cmd: str) -> list[str]:
        """The MESSAGEs of `cmd` sipp received, in order."""
        text = self.text()
        found = []
        for block in text.split("----------------------------------------------- "):
            if "message received" in block and f"<CmdType>{cmd}</CmdType>" in block:
                found.append(block)
        return found

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.text()))


@contextmanager
def upper(
    tmp: Path, password: str = PASSWORD, clock_ahead: timedelta = timedelta(0)
) -> Iterator[Upper]:
    peer = Upper(tmp, password, clock_ahead)
    peer.start()
    try:
        yield peer
    finally:
        peer.stop()


def _until(check: Any, what: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _uplink(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": "district", "name": "光明区雪亮平台", "upper_id": UPPER_ID,
        "upper_domain": UPPER_REALM, "host": "127.0.0.1", "port": port, "transport": "udp",
        "password": PASSWORD, "local_id": LOCAL_ID, "area_prefix": DISTRICT,
        "keepalive_s": 1, **extra,
    }  # fmt: skip


def _areas(admin: httpx.Client) -> None:
    for code, name in ((DISTRICT, "龙华区"), (STREET, "民治街道"), (COMMUNITY, "北站社区")):
        admin.post("/api/v1/areas", json={"code": code, "name": name}).raise_for_status()


def _sensors(admin: httpx.Client) -> list[dict[str, Any]]:
    made = []
    for n in range(SENSORS):
        answer = admin.post("/api/v1/devices", json={
            "id": f"SD-{n:02d}", "type": "smoke_sensor", "area": COMMUNITY,
            "site": "北站花园", "building": f"{n + 1}栋", "lat": 22.6 + n / 1000, "lon": 114.03,
        })  # fmt: skip
        assert answer.status_code == 201, answer.text
        made.append(answer.json())
    return made


def test_uplinks_are_data_with_a_write_only_password(
    admin: httpx.Client, clean_uplinks: None
) -> None:
    _areas(admin)
    made = admin.post("/api/v1/gb/uplinks", json=_uplink(5060))
    assert made.status_code == 201, made.text
    body = made.json()
    assert "password" not in body and "sealed_password" not in body
    assert body["status"]["registered"] is False and body["status"]["forwarded"] == 0
    assert admin.post("/api/v1/gb/uplinks", json=_uplink(5060)).status_code == 409
    bad = admin.post("/api/v1/gb/uplinks", json={**_uplink(5060), "id": "x", "upper_id": "123"})
    assert bad.status_code == 422
    no_password = {k: v for k, v in _uplink(5060).items() if k != "password"}
    assert admin.post("/api/v1/gb/uplinks", json={**no_password, "id": "y",
                                                  "local_id": "44031100012000000009"}).status_code == 422  # fmt: skip
    kept = admin.put("/api/v1/gb/uplinks/district", json={**no_password, "name": "区平台"})
    assert kept.status_code == 200 and kept.json()["name"] == "区平台"
    assert [u["id"] for u in admin.get("/api/v1/gb/uplinks").json()] == ["district"]
    assert admin.delete("/api/v1/gb/uplinks/district").status_code == 204
    assert admin.get("/api/v1/gb/uplinks/district").status_code == 404


def test_uplinks_are_for_admins_of_their_area(
    admin: httpx.Client, clean_uplinks: None, client_for: Any
) -> None:
    _areas(admin)
    admin.post("/api/v1/areas", json={"code": "440305", "name": "南山区"}).raise_for_status()
    assert admin.post("/api/v1/gb/uplinks", json=_uplink(5060)).status_code == 201
    elsewhere = client_for("admin", "440305")
    assert elsewhere.get("/api/v1/gb/uplinks").json() == []
    assert elsewhere.get("/api/v1/gb/uplinks/district").status_code == 404
    assert elsewhere.delete("/api/v1/gb/uplinks/district").status_code == 404
    outside = elsewhere.post("/api/v1/gb/uplinks", json={**_uplink(5060), "id": "other",
                                                         "local_id": "44031100012000000009"})  # fmt: skip
    assert outside.status_code == 403
    operator = client_for("operator", "")
    assert operator.get("/api/v1/gb/uplinks").status_code == 403
    mine = client_for("admin", DISTRICT)
    assert [u["id"] for u in mine.get("/api/v1/gb/uplinks").json()] == ["district"]


def test_a_smoke_sensor_has_a_stable_alarm_input_id(
    admin: httpx.Client, clean_uplinks: None
) -> None:
    _areas(admin)
    sensor = _sensors(admin)[0]
    channel = sensor["gb_channel_id"]
    assert re.fullmatch(r"4403110000134\d{7}", channel), channel
    moved = admin.patch("/api/v1/devices/SD-00", json={"site": "北站花园二期"})
    assert moved.status_code == 200, moved.text
    assert admin.get("/api/v1/devices/SD-00").json()["gb_channel_id"] == channel


def _smoke(database_url: str, sensor: dict[str, Any]) -> None:
    _signal(database_url, sensor, "smoke_alarm")


def _signal(
    database_url: str, device: dict[str, Any], kind: str, attrs: dict[str, Any] | None = None
) -> None:
    signal = Signal(ts=datetime.now(UTC), kind=kind, source_id=device["id"],
                    source_type=device["type"], area=device["area"], site=device.get("site"),
                    building=device.get("building"), attrs=attrs or {})  # fmt: skip

    async def append() -> None:
        conn = await psycopg.AsyncConnection.connect(database_url)
        async with conn, conn.transaction():
            await signal_log.append(conn, [signal])  # type: ignore[arg-type]

    asyncio.run(append())


SMOKE_RULE = {
    "id": "smoke", "name": "smoke", "match": {"kind": ["smoke_alarm"]},
    "incident": {"category": "fire", "priority": "emergency", "title": "Smoke at {site} {building}"},
}  # fmt: skip


def test_the_hub_registers_answers_the_catalog_and_forwards_alarms(
    admin: httpx.Client, clean_uplinks: None, settings: Settings, database_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    _areas(admin)
    sensors = _sensors(admin)
    camera = admin.post("/api/v1/cameras", json={"id": "CAM-1", "area": COMMUNITY,
                                                 "stream_url": "rtsp://10.0.0.9/main"})  # fmt: skip
    assert camera.status_code == 201, camera.text
    assert admin.post("/api/v1/rules", json=SMOKE_RULE).status_code == 201
    with upper(tmp_path, clock_ahead=timedelta(minutes=10)) as peer, gb_running(
        database_url, hmac_key(settings), timers=Timers(t1=0.05)
    ), running_rules(database_url):  # fmt: skip
        assert admin.post("/api/v1/gb/uplinks", json=_uplink(peer.port)).status_code == 201
        status = _until(lambda: (s := admin.get("/api/v1/gb/uplinks/district").json()["status"])
                        ["registered"] and s, "registered")  # fmt: skip
        assert 590_000 < status["clock_skew_ms"] < 610_000  # the upper's Date, 10 min ahead
        # Every page of the catalog: business group, 3 organisations, 12 sensors, 1 camera.
        pages = _until(lambda: len(peer.received("Catalog")) >= 3 and peer.received("Catalog"),
                       "three catalog pages")  # fmt: skip
        text = "".join(pages)
        assert all("<SumNum>17</SumNum>" in page for page in pages)
        for sensor in sensors:
            assert f"<DeviceID>{sensor['gb_channel_id']}</DeviceID>" in text
        assert "<DeviceID>4403110000215" not in text  # the group is the hub's (local_id's)
        assert f"<DeviceID>{LOCAL_ID[:10]}2150000001</DeviceID>" in text
        assert "<Name>北站社区</Name>" in text and "<CivilCode>44031100</CivilCode>" in text
        for tag in ("Parental", "SafetyWay", "RegisterWay", "Secrecy", "Longitude", "Status"):
            assert f"<{tag}>" in text
        _until(lambda: admin.get("/api/v1/gb/uplinks/district").json()["status"]["last_keepalive"],
               "a keepalive answered")  # fmt: skip

        _smoke(database_url, sensors[3])
        alarm = _until(lambda: peer.received("Alarm"), "the alarm forwarded")[0]
        assert f"<DeviceID>{sensors[3]['gb_channel_id']}</DeviceID>" in alarm
        assert (
            "<AlarmPriority>1</AlarmPriority>" in alarm and "<AlarmMethod>2</AlarmMethod>" in alarm
        )
        assert "<AlarmType>" not in alarm and "<Info>" not in alarm
        assert "烟感报警：北站花园 4栋" in alarm and "<Longitude>" in alarm
        stamped = re.search(r"<AlarmTime>([^<]+)</AlarmTime>", alarm)
        assert stamped is not None
        local = datetime.fromisoformat(stamped.group(1)).replace(tzinfo=ZoneInfo("Asia/Shanghai"))
        assert abs((local - datetime.now(UTC)) - timedelta(minutes=10)) < timedelta(seconds=30)
        _until(lambda: admin.get("/api/v1/gb/uplinks/district").json()["status"]["forwarded"] == 1,
               "counted forwarded")  # fmt: skip
        log = admin.get("/api/v1/gb/uplinks/district/deliveries").json()
        assert log[0]["state"] == "delivered" and log[0]["last_status"] == 200

        metrics = httpx.get(admin.base_url.join("/metrics")).text
        assert 'sb_gb_uplink_registered{uplink="district"} 1.0' in metrics
        assert 'sb_gb_uplink_alarms_total{outcome="forwarded",uplink="district"} 1.0' in metrics

        # The upper restarts: silence, then a fresh sipp; the hub registers again.
        peer.stop()
        _until(lambda: not admin.get("/api/v1/gb/uplinks/district").json()["status"]["registered"],
               "unregistered after 3 unanswered keepalives", timeout=30)  # fmt: skip
        _smoke(database_url, sensors[5])  # raised while the upper is away: held, then sent
        before = peer.count("REGISTER sip:")
        peer.start()
        _until(lambda: peer.count("REGISTER sip:") > before
               and admin.get("/api/v1/gb/uplinks/district").json()["status"]["registered"],
               "registered again after the upper restarted", timeout=30)  # fmt: skip
        later = _until(lambda: [a for a in peer.received("Alarm")
                                if sensors[5]["gb_channel_id"] in a], "the held alarm sent")  # fmt: skip
        assert "<AlarmPriority>1</AlarmPriority>" in later[0]

        # Removed: the hub unregisters (REGISTER with Expires: 0).
        assert admin.delete("/api/v1/gb/uplinks/district").status_code == 204
        _until(lambda: peer.count("Expires: 0") >= 2, "unregistered (401, then the digest)")


def test_chosen_signal_kinds_of_the_uplinks_area_go_up_on_their_own(
    admin: httpx.Client, clean_uplinks: None, settings: Settings, database_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """`forward.signal_kind`: a tamper and an intrusion go up as alarms without any incident
    (no rules run); a battery_low (not chosen) and a tamper of another district do not."""
    _areas(admin)
    admin.post("/api/v1/areas", json={"code": "440305", "name": "南山区"}).raise_for_status()
    sensors = _sensors(admin)
    camera = admin.post("/api/v1/cameras", json={"id": "CAM-1", "area": COMMUNITY,
                                                 "stream_url": "rtsp://10.0.0.9/main"}).json()  # fmt: skip
    away = admin.post("/api/v1/devices", json={"id": "SD-AWAY", "type": "smoke_sensor",
                                               "area": "440305"}).json()  # fmt: skip
    forward = {"priority": ["emergency"], "signal_kind": ["tamper", "intrusion"]}
    with upper(tmp_path) as peer, gb_running(database_url, hmac_key(settings)):
        made = admin.post("/api/v1/gb/uplinks", json=_uplink(peer.port, forward=forward))
        assert made.status_code == 201, made.text
        assert made.json()["forward"]["signal_kind"] == ["tamper", "intrusion"]
        _until(lambda: admin.get("/api/v1/gb/uplinks/district").json()["status"]["registered"],
               "registered")  # fmt: skip
        _signal(database_url, away, "tamper")  # another district's
        _signal(database_url, sensors[1], "battery_low")  # a kind not chosen
        _signal(database_url, sensors[2], "tamper", {"priority": 2})
        _signal(database_url, camera, "intrusion")
        alarms = _until(lambda: len(peer.received("Alarm")) >= 2 and peer.received("Alarm"),
                        "both chosen signals forwarded")  # fmt: skip
        tamper = next(a for a in alarms if sensors[2]["gb_channel_id"] in a)
        assert "<AlarmPriority>2</AlarmPriority>" in tamper  # the GB priority it came with
        assert "<AlarmMethod>2</AlarmMethod>" in tamper and "<AlarmType>2</AlarmType>" in tamper
        assert "防破坏报警：北站花园 3栋" in tamper
        assert "<Longitude>114.030000</Longitude>" in tamper
        intrusion = next(a for a in alarms if camera["gb_channel_id"] in a)
        assert "<AlarmPriority>4</AlarmPriority>" in intrusion  # none given
        assert "<AlarmMethod>5</AlarmMethod>" in intrusion
        assert "<Info>" in intrusion and "<AlarmType>6</AlarmType>" in intrusion
        _until(lambda: admin.get("/api/v1/gb/uplinks/district").json()["status"]["forwarded"] == 2,
               "both counted forwarded")  # fmt: skip
        log = admin.get("/api/v1/gb/uplinks/district/deliveries").json()
        assert len(log) == 2 and all(row["incident_id"] is None for row in log)
        assert {row["state"] for row in log} == {"delivered"}
        # The outbox is handled in order: the two written before the chosen ones were never
        # written at all (the trigger only takes what an uplink takes).
        with psycopg.connect(database_url) as conn:
            kinds = conn.execute(
                "SELECT s.kind, s.source_id FROM gb28181_cascade_outbox o"
                " JOIN signals s ON s.id = o.signal_id ORDER BY o.id"
            ).fetchall()
        assert kinds == [("tamper", "SD-02"), ("intrusion", "CAM-1")]
        assert len(peer.received("Alarm")) == 2
        assert away["gb_channel_id"] not in peer.text()


def test_a_wrong_password_is_a_403_on_the_uplinks_status(
    admin: httpx.Client, clean_uplinks: None, settings: Settings, database_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    _areas(admin)
    with upper(tmp_path, password="the-upper-expects-another") as peer, gb_running(
        database_url, hmac_key(settings)
    ):  # fmt: skip
        assert admin.post("/api/v1/gb/uplinks", json=_uplink(peer.port)).status_code == 201
        status = _until(lambda: (s := admin.get("/api/v1/gb/uplinks/district").json()["status"])
                        ["last_error"] and s, "the refusal on the status")  # fmt: skip
        assert status["registered"] is False
        assert "403" in status["last_error"]
        assert peer.count("Authorization: Digest") >= 1


def test_catalog_subscriptions_are_notified_and_invites_refused_with_a_reason(
    admin: httpx.Client, clean_uplinks: None, settings: Settings, database_url: str
) -> None:
    """A plain SIP peer plays the upper: it subscribes to the catalog, hears a sensor added
    and one going away, and is told why its INVITE cannot be served."""
    _areas(admin)
    _sensors(admin)
    with gb_running(database_url, hmac_key(settings)) as hub_port:
        peer = UpperPeer(hub_port)
        try:
            made = admin.post("/api/v1/gb/uplinks", json=_uplink(peer.port, keepalive_s=60))
            assert made.status_code == 201
            register = peer.recv(10)
            assert isinstance(register, SipRequest) and register.method == "REGISTER"
            peer.answer(register)  # an upper without a password: 200 at once
            _until(lambda: admin.get("/api/v1/gb/uplinks/district").json()["status"]["registered"],
                   "registered")  # fmt: skip
            subscribe = _from_upper(peer, "SUBSCRIBE", [("Event", "Catalog"), ("Expires", "600")],
                                    b"<?xml version=\"1.0\"?><Query><CmdType>Catalog</CmdType>"
                                    b"<SN>9</SN><DeviceID>" + LOCAL_ID.encode() + b"</DeviceID>"
                                    b"</Query>")  # fmt: skip
            answer = peer.ask(subscribe)
            assert answer is not None and answer.status == 200
            assert answer.headers.get("Expires") == "600"
            added = admin.post("/api/v1/devices", json={"id": "SD-NEW", "type": "smoke_sensor",
                                                        "area": COMMUNITY}).json()  # fmt: skip
            notify = peer.expect("Catalog", method="NOTIFY").body.decode("gb18030")
            assert f"<DeviceID>{added['gb_channel_id']}</DeviceID>" in notify
            assert "<Event>ADD</Event>" in notify and "<SumNum>1</SumNum>" in notify
            assert admin.delete("/api/v1/devices/SD-01").status_code == 204
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # past retransmissions of the first NOTIFY
                gone = peer.expect("Catalog", method="NOTIFY").body.decode("gb18030")
                if "<Event>DEL</Event>" in gone:
                    break
            assert "<Event>DEL</Event>" in gone and "<SumNum>1</SumNum>" in gone

            invite = _from_upper(peer, "INVITE", [("Contact", f"<sip:{UPPER_ID}@127.0.0.1>")],
                                 b"v=0\r\n", content_type="application/sdp")  # fmt: skip
            refused = peer.ask(invite)
            assert refused is not None and refused.status == 488
            assert "media" in (refused.headers.get("Warning") or "")
        finally:
            peer.close()


class UpperPeer(Peer):
    """A plain SIP peer as an upper platform: answers in-dialog requests (To already tagged)
    as a dialog peer does."""

    def answer(
        self, request: SipRequest, status: str = "200 OK", headers: tuple[str, ...] = ()
    ) -> None:
        to = request.headers.get("To") or ""
        lines = [
            f"SIP/2.0 {status}",
            *(f"Via: {v}" for v in request.headers.get_all("Via")),
            f"From: {request.headers.get('From')}",
            f"To: {to}" if ";tag=" in to else f"To: {to};tag=upper",
            f"Call-ID: {request.call_id}",
            f"CSeq: {request.headers.get('CSeq')}",
            *headers,
            "Content-Length: 0",
        ]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    def next_request(self, method: str, timeout: float = 10.0) -> SipRequest:
        """The hub's next `method`; keepalives on the way are answered 200."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            got = self.recv(left)
            if isinstance(got, SipRequest) and got.method == method:
                return got
            if isinstance(got, SipRequest):
                self.answer(got)
        raise AssertionError(f"no {method} from the hub")


def test_the_registration_is_refreshed_before_it_expires_and_redone_after_a_403_or_404(
    admin: httpx.Client, clean_uplinks: None, settings: Settings, database_url: str
) -> None:
    """The upper grants 3 s (less than the hour asked): the hub registers again before they
    run out. Later it answers a keepalive 403, then one 404 (it no longer knows us): each
    time the hub is unregistered, says why, and registers again."""
    _areas(admin)
    with gb_running(database_url, hmac_key(settings)) as hub_port:
        peer = UpperPeer(hub_port)
        try:
            assert admin.post("/api/v1/gb/uplinks", json=_uplink(peer.port)).status_code == 201
            first = peer.next_request("REGISTER")
            assert first.headers.get("Expires") == "3600"
            peer.answer(first, headers=("Expires: 3",))
            granted_at = time.monotonic()
            _until(lambda: admin.get("/api/v1/gb/uplinks/district").json()["status"]["registered"],
                   "registered")  # fmt: skip
            refresh = peer.next_request("REGISTER", timeout=10)
            assert time.monotonic() - granted_at < 3.0  # before the 3 s granted ran out
            assert refresh.call_id == first.call_id and refresh.cseq.seq > first.cseq.seq
            peer.answer(refresh, headers=("Expires: 3600",))

            for refusal in ("403 Forbidden", "404 Not Found"):
                keepalive = peer.next_request("MESSAGE")
                assert b"<CmdType>Keepalive</CmdType>" in keepalive.body
                peer.answer(keepalive, status=refusal)
                again = peer.next_request("REGISTER")  # held unanswered: the status shows why
                status = _until(lambda: (s := admin.get("/api/v1/gb/uplinks/district").json()
                                         ["status"])["last_error"] and s, "the refusal")  # fmt: skip
                assert status["registered"] is False
                assert f"keepalive answered {refusal[:3]}" in status["last_error"]
                peer.answer(again, headers=("Expires: 3600",))
                _until(lambda: admin.get("/api/v1/gb/uplinks/district").json()["status"]
                       ["registered"], "registered again")  # fmt: skip
        finally:
            peer.close()


def _from_upper(
    peer: Peer, method: str, headers: list[tuple[str, str]], body: bytes,
    content_type: str = "Application/MANSCDP+xml",
) -> SipRequest:  # fmt: skip
    request = build_request(
        method, f"sip:{LOCAL_ID}@127.0.0.1:{peer.hub[1]}",
        from_=f"<sip:{UPPER_ID}@{UPPER_REALM}>", to=f"<sip:{LOCAL_ID}@{UPPER_REALM}>",
        headers=headers, body=body, content_type=content_type,
    )  # fmt: skip
    via = f"SIP/2.0/UDP {peer.ip}:{peer.port};rport;branch={new_branch()}"
    request.headers.add("Via", via, first=True)
    return request


def test_a_kill_mid_send_loses_no_alarm(
    admin: httpx.Client, clean_uplinks: None, settings: Settings, database_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """`shaobing gb28181` is killed (SIGKILL) while its alarm to an upper that went quiet is in
    flight; the next process sends it once the upper is back."""
    _areas(admin)
    sensors = _sensors(admin)
    assert admin.post("/api/v1/rules", json=SMOKE_RULE).status_code == 201
    env = hub_env(SB_DATABASE_URL=database_url, SB_GB_LISTEN=f"127.0.0.1:{free_port()}",
                  SB_GB_ID="44031100002000000001", SB_DATA_DIR=str(settings.data_dir))  # fmt: skip
    peer = Upper(tmp_path, PASSWORD, timedelta(0))
    peer.start()
    first = HubProcess("gb-1", ["gb28181"], env, tmp_path).start()
    try:
        first.wait_ready()
        assert admin.post("/api/v1/gb/uplinks", json=_uplink(peer.port)).status_code == 201
        _until(lambda: admin.get("/api/v1/gb/uplinks/district").json()["status"]["registered"],
               "registered")  # fmt: skip
        peer.stop()  # the upper goes quiet; the hub still thinks itself registered
        with running_rules(database_url):
            _smoke(database_url, sensors[7])
            # (the process seeded the built-in smoke rule too: one delivery per incident)
            _until(lambda: set(_delivery_states(database_url)) == {"pending"}, "planned")
        first.kill()  # while the MESSAGE is retransmitted, unanswered
        assert set(_delivery_states(database_url)) == {"pending"}
        peer.start()
        second = HubProcess("gb-2", ["gb28181"], env, tmp_path).start()
        try:
            second.wait_ready()
            alarm = _until(lambda: peer.received("Alarm"), "the alarm after the restart", 40)
            assert f"<DeviceID>{sensors[7]['gb_channel_id']}</DeviceID>" in alarm[-1]
            _until(lambda: set(_delivery_states(database_url)) == {"delivered"}, "delivered")
        finally:
            second.stop()
    finally:
        if first.process is not None and first.process.poll() is None:
            first.stop()
        peer.stop()


def _delivery_states(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT state FROM gb28181_uplink_deliveries ORDER BY id").fetchall()
    return [r[0] for r in rows]
