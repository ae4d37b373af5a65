"""What the hub keeps in memory of each registered device, and the requests it sends them."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from devices.gb_ids import GUARD_BY_DEFAULT, type_code
from devices.registry import DeviceRef
from gb28181 import manscdp, metrics
from gb28181.sip import SipResponse, SipStack, SipTimeout, SipTransportError, build_request
from gb28181.sip.transport import Address

DEFAULT_HEARTBEAT_S = 60
MANSCDP_TYPE = "Application/MANSCDP+xml"


@dataclass
class Registration:
    device: DeviceRef
    address: Address
    expires_at: datetime
    expires_s: int
    gb_version: str | None
    channels: list[DeviceRef] = field(default_factory=list)

    def live(self, now: datetime) -> bool:
        return now < self.expires_at

    def deadline(self) -> timedelta:
        """Silence past min(Expires, 3 × heartbeat) is offline; heartbeat: the device's tag
        `gb_heartbeat_s` (default 60 s)."""
        beat = self.device.tags.get("gb_heartbeat_s", DEFAULT_HEARTBEAT_S)
        if not isinstance(beat, int | float) or not 1 <= beat <= 3600:
            beat = DEFAULT_HEARTBEAT_S
        return timedelta(seconds=min(self.expires_s, 3 * beat))

    def wants_guard(self) -> bool:
        """SetGuard after registration: the device's tag `gb_set_guard`, default on for IPCs."""
        said = self.device.tags.get("gb_set_guard")
        if isinstance(said, bool):
            return said
        return type_code(self.device.id) in GUARD_BY_DEFAULT


class Outbound:
    """The hub's requests to devices: MANSCDP MESSAGEs and SUBSCRIBEs, each numbered (SN)."""

    def __init__(self, stack: SipStack, hub_id: str, realm: str) -> None:
        self.stack = stack
        self.hub_id = hub_id
        self.realm = realm
        self._sn = itertools.count(1)

    def next_sn(self) -> int:
        return next(self._sn)

    async def manscdp(
        self,
        reg: Registration,
        root: str,
        cmd_type: str,
        extra: str = "",
        *,
        target: str | None = None,
        method: str = "MESSAGE",
        headers: Iterable[tuple[str, str]] = (),
        sn: int | None = None,
    ) -> tuple[SipResponse | None, int]:
        """Send; the device's final answer (None: no answer by Timer F) and the SN used."""
        sn = self.next_sn() if sn is None else sn
        body = manscdp.build(root, cmd_type, sn, target or reg.device.id, extra)
        device = reg.device.id
        request = build_request(
            method,
            f"sip:{device}@{reg.address.host}:{reg.address.port}",
            from_=f"<sip:{self.hub_id}@{self.realm}>",
            to=f"<sip:{device}@{self.realm}>",
            headers=list(headers),
            body=body,
            content_type=MANSCDP_TYPE,
        )
        try:
            response = await self.stack.request(request, reg.address)
        except (SipTimeout, SipTransportError):
            metrics.REQUESTS_OUT.labels(cmd=cmd_type, outcome="no_answer").inc()
            return None, sn
        outcome = "ok" if response.status < 300 else "refused"
        metrics.REQUESTS_OUT.labels(cmd=cmd_type, outcome=outcome).inc()
        return response, sn

    async def subscribe(
        self, reg: Registration, event: str, cmd_type: str, extra: str, expires: int
    ) -> SipResponse | None:
        response, _ = await self.manscdp(
            reg,
            "Query",
            cmd_type,
            extra,
            method="SUBSCRIBE",
            headers=[("Event", event), ("Expires", str(expires))],
        )
        return response


ALARM_QUERY = (
    "<StartAlarmPriority>1</StartAlarmPriority>\r\n<EndAlarmPriority>4</EndAlarmPriority>\r\n"
    "<AlarmMethod>0</AlarmMethod>\r\n"
)
CONTROL = {
    "set_guard": ("Control", "DeviceControl", "<GuardCmd>SetGuard</GuardCmd>\r\n"),
    "reset_guard": ("Control", "DeviceControl", "<GuardCmd>ResetGuard</GuardCmd>\r\n"),
    "reset_alarm": ("Control", "DeviceControl", "<AlarmCmd>ResetAlarm</AlarmCmd>\r\n"),
    "reboot": ("Control", "DeviceControl", "<TeleBoot>Boot</TeleBoot>\r\n"),
    "device_info": ("Query", "DeviceInfo", ""),
    "device_status": ("Query", "DeviceStatus", ""),
}
