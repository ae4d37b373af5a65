"""The GB/T 28181 application's pure parts: ids, sealed digest passwords, MANSCDP bodies
(charsets, hostile XML), the alarm kind table, catalog gathering, the GB Date."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.credentials import open_sealed, seal_password
from devices.gb_ids import check_gb_id
from devices.models import DeviceIn
from gb28181.alarms import ALARM_KINDS, alarm_kind, read_alarm
from gb28181.catalog import Gathering
from gb28181.manscdp import BodyError, decode_text, parse_body, read_manscdp
from gb28181.registrar import gb_date

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


def test_gb_ids_are_twenty_digits_with_a_known_type_code() -> None:
    assert check_gb_id("44031100001320000001")
    for bad in ("4403110000132000000", "4403110000132000000a", "44031100009990000001"):
        with pytest.raises(ValueError):
            check_gb_id(bad)
    with pytest.raises(ValueError, match="type code 999"):
        DeviceIn.model_validate({"id": "44031100009990000001", "type": "gb28181", "area": "440311"})


def test_a_sealed_password_opens_only_with_its_key_and_device() -> None:
    sealed = seal_password(b"k" * 32, "44031100001320000001", "pass-word_123")
    assert "pass-word_123" not in sealed
    assert open_sealed(b"k" * 32, "44031100001320000001", sealed) == "pass-word_123"
    assert open_sealed(b"x" * 32, "44031100001320000001", sealed) is None
    assert open_sealed(b"k" * 32, "44031100001320000002", sealed) is None
    assert open_sealed(b"k" * 32, "44031100001320000001", sealed[:-2] + "00") is None
    assert seal_password(b"k" * 32, "d", "p") != seal_password(b"k" * 32, "d", "p")  # salted


@pytest.mark.parametrize(
    ("declared", "encoding"),
    [("GB2312", "gb18030"), ("GBK", "gb18030"), ("GB18030", "gb18030"), ("UTF-8", "utf-8"),
     (None, "utf-8"), (None, "gb18030"), ("ISO-8859-1", "gb18030"), ("ISO-8859-1", "utf-8")],
)  # fmt: skip
def test_bodies_decode_by_their_declaration(declared: str | None, encoding: str) -> None:
    text = "<Notify><Name>大门 𠀀</Name></Notify>"
    head = f'<?xml version="1.0" encoding="{declared}"?>' if declared else ""
    assert decode_text((head + text).encode(encoding)).endswith(text)


def test_a_body_that_lies_about_utf8_is_refused() -> None:
    body = '<?xml version="1.0" encoding="UTF-8"?><a>大门</a>'.encode("gb18030")
    with pytest.raises(BodyError) as caught:
        parse_body(body)
    assert caught.value.reason == "bad_charset"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xx">]><a>&x;</a>', "xml_doctype"),
        (b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><a>&x;</a>', "xml_doctype"),
        (b"<a>" * 50 + b"</a>" * 50, "xml_too_deep"),
        (b"<a>" + b"<b/>" * 30_000 + b"</a>", "xml_too_large"),
        (b"<a>" + b"x" * 10_000 + b"</a>", "xml_too_large"),
        (b"<a><?php x?></a>", "xml_pi"),
        (b"<a><b></a>", "bad_xml"),
        (b"", "bad_xml"),
        (b"\xff\xfe\x00", "bad_charset"),
    ],
)
def test_hostile_xml_is_refused_by_reason(body: bytes, reason: str) -> None:
    with pytest.raises(BodyError) as caught:
        parse_body(body)
    assert caught.value.reason == reason


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_the_body_reader_raises_nothing_but_body_error(data: bytes) -> None:
    with contextlib.suppress(BodyError):
        read_manscdp(data)


def test_bare_ampersands_and_the_alarm_info_variant_are_read() -> None:
    body = (
        "<?xml version='1.0' encoding='GB2312'?><AlarmInfo><CmdType>Alarm</CmdType><SN>3</SN>"
        "<DeviceID>44031100001310000001</DeviceID><AlarmMethod>5</AlarmMethod>"
        "<AlarmType>6</AlarmType><AlarmDescription>A&B &amp; C</AlarmDescription></AlarmInfo>"
    ).encode("gb18030")
    msg = read_manscdp(body)
    assert (msg.root, msg.cmd_type, msg.sn) == ("Notify", "Alarm", "3")
    alarm = read_alarm(msg.element, "44031100001320000001", msg.sn, TZ, NOW)
    assert alarm.kind == "intrusion" and alarm.attrs["description"] == "A&B & C"
    nested = (
        b"<Notify><AlarmInfo><CmdType>Alarm</CmdType><SN>4</SN><DeviceID>1</DeviceID>"
        b"<AlarmMethod>2</AlarmMethod></AlarmInfo></Notify>"
    )
    assert read_manscdp(nested).element.get("AlarmMethod") == "2"


def test_the_published_alarm_kind_table() -> None:
    expected = {
        ("5", "2"): "motion", ("5", "3"): "object_left", ("5", "4"): "object_removed",
        ("5", "5"): "line_crossing", ("5", "6"): "intrusion", ("5", "8"): "loitering",
        ("5", "10"): "crowd", ("5", "13"): "tamper", ("2", "1"): "video_loss",
        ("2", "2"): "tamper", ("2", "3"): "device_fault", ("2", "4"): "device_fault",
        ("2", "5"): "device_fault", ("2", None): "device_alarm", ("6", "1"): "device_fault",
        ("6", "2"): "device_fault", ("1", None): "device_alarm", ("3", None): "device_alarm",
        ("4", None): "device_alarm", ("7", "9"): "device_alarm",
    }  # fmt: skip
    for (method, alarm_type), kind in expected.items():
        assert alarm_kind(method, alarm_type) == kind, (method, alarm_type)
    assert {k: v for k, v in ALARM_KINDS.items() if k in expected} == {
        k: v for k, v in expected.items() if k in ALARM_KINDS
    }
    assert alarm_kind(None, None) is None and alarm_kind("9", None) is None


def test_alarm_priority_time_and_event_type() -> None:
    body = (
        b"<Notify><CmdType>Alarm</CmdType><SN>9</SN><DeviceID>44031100001310000001</DeviceID>"
        b"<AlarmPriority>3</AlarmPriority><AlarmMethod>5</AlarmMethod>"
        b"<AlarmTime>2026-12-07T10:00:00</AlarmTime><Info><AlarmType>5</AlarmType>"
        b"<AlarmTypeParam><EventType>1</EventType></AlarmTypeParam></Info></Notify>"
    )
    msg = read_manscdp(body)
    alarm = read_alarm(msg.element, "44031100001320000001", msg.sn, TZ, NOW)
    assert alarm.kind == "line_crossing" and alarm.confidence == 0.5
    assert alarm.attrs["priority"] == 3 and alarm.attrs["event_type"] == "1"
    assert alarm.ts == datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
    assert alarm.source_id == "44031100001310000001"


def _catalog(sn: str, total: int, *ids: str) -> bytes:
    items = "".join(f"<Item><DeviceID>{i}</DeviceID><Name>n{i[-1]}</Name></Item>" for i in ids)
    return (
        f"<Response><CmdType>Catalog</CmdType><SN>{sn}</SN><DeviceID>44031100001180000001"
        f"</DeviceID><SumNum>{total}</SumNum><DeviceList Num='{len(ids)}'>{items}</DeviceList>"
        "</Response>"
    ).encode()


def test_a_catalog_is_gathered_to_sum_num_and_bad_ids_are_skipped() -> None:
    gathering = Gathering("5")
    assert not gathering.add(read_manscdp(_catalog("5", 3, "44031100001310000001")).element)
    assert not gathering.add(read_manscdp(_catalog("5", 3, "bad", "123")).element)
    assert not gathering.add(read_manscdp(_catalog("5", 3, "44031100001310000001")).element)
    complete = gathering.add(
        read_manscdp(_catalog("5", 3, "44031100001310000002", "44031100001340000001")).element
    )
    assert complete and sorted(gathering.channels) == [
        "44031100001310000001", "44031100001310000002", "44031100001340000001",
    ]  # fmt: skip
    channels = gathering.channels
    assert channels["44031100001310000002"].is_video
    assert channels["44031100001340000001"].is_alarm_input


def test_the_gb_date_is_local_time_with_milliseconds() -> None:
    at = datetime(2026, 12, 7, 2, 3, 4, 567_890, tzinfo=UTC)
    assert gb_date(at, TZ) == "2026-12-07T10:03:04.567"


def test_vision_waits_for_gb_media_instead_of_losing_the_stream() -> None:
    capture = pytest.importorskip("vision.capture")
    source = capture.open_source("gb28181://44031100001310000001", 2.0)
    assert source.state == "waiting_for_gb_media"
    assert source.next_frame() is None and source.changes() == []
    source.close()
