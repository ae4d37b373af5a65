"""Notifications that must arrive whatever happens: a dispatched unit's message and its link,
email through a real SMTP server with STARTTLS, and senders SIGKILLed mid-delivery."""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from hub.embedded.ports import free_port
from hub.secret import hmac_key
from hub.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.hub_processes import HubProcess, hub_env
from tests.notify_helpers import act, notifications, open_incident, running_notifier, wait_until
from tests.platform_receivers import Webhook, serving
from tests.test_notify import channel, route
from tests.test_registry_api import COMMUNITY, register_area

# --- a dispatched unit -----------------------------------------------------------------------


def test_a_dispatched_unit_is_told_and_its_link_acts_on_that_incident_only(
    admin: httpx.Client, database_url: str, api_url: str, settings: Settings
) -> None:
    register_area(admin)
    with serving(Webhook("u")) as phone:
        channel(admin, id="station-1", kind="webhook", url=phone.url, secret="u")
        unit = admin.post("/api/v1/units", json={
            "id": "U-01", "name": "楼村微型消防站", "kind": "fire", "area": COMMUNITY,
            "categories": ["fire_safety"], "lat": 22.78, "lon": 113.93,
            "contacts": {"channels": ["station-1"], "mobiles": ["13800138000"]},
        })  # fmt: skip
        assert unit.status_code == 201, unit.text
        assert admin.post("/api/v1/units", json={
            "id": "U-02", "name": "x", "kind": "fire", "area": COMMUNITY,
            "contacts": {"channels": ["nowhere"]}}).status_code == 422  # fmt: skip
        with running_notifier(database_url, secret=hmac_key(settings)):
            incident = open_incident(database_url, COMMUNITY, lat=22.78, lon=113.93)
            other = open_incident(database_url, COMMUNITY, title="另一起", building="9栋")
            act(database_url, incident.id, "accept")
            act(database_url, incident.id, "dispatch", unit_id="U-01")
            [got] = phone.wait_for(1)
    body = got.json()
    assert body["event"] == "incident.dispatched" and body["incident"]["unit_id"] == "U-01"
    assert "楼村微型消防站" in body["title"] and "uri.amap.com" in body["text"]
    found = re.search(r"https://hub\.example\.cn/u/(sbl_\w+)", body["text"])
    assert found, body["text"]
    token = found[1]

    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {token}"}) as link:
        page = httpx.get(f"{api_url}/u/{token}")
        assert page.status_code == 200 and "已到场" in page.text
        view = link.get("/api/v1/unit-link").json()
        assert view["incident"]["id"] == incident.id and view["unit_id"] == "U-01"
        assert view["actions"] == ["acknowledge", "start"]
        for action in ("acknowledge", "start", "resolve"):
            done = link.post(f"/api/v1/incidents/{incident.id}/actions",
                             json={"action": action, "note": "到场"})  # fmt: skip
            assert done.status_code == 200, done.text
        assert done.json()["status"] == "resolved"
        # Nothing else: not another incident, not another action, not another route.
        assert link.get(f"/api/v1/incidents/{other.id}").status_code == 403
        assert link.post(f"/api/v1/incidents/{other.id}/actions",
                         json={"action": "comment", "note": "x"}).status_code == 403  # fmt: skip
        assert link.post(f"/api/v1/incidents/{incident.id}/actions",
                         json={"action": "verify"}).status_code == 403  # fmt: skip
        for path in ("/api/v1/incidents", "/api/v1/devices", "/api/v1/units", "/api/v1/signals"):
            assert link.get(path).status_code == 403, path
        audit = admin.get(f"/api/v1/incidents/{incident.id}/audit").json()
        assert [a["action"] for a in audit][-3:] == ["acknowledge", "start", "resolve"]
        assert audit[-1]["actor"] == "unit:U-01"
        act(database_url, incident.id, "verify")
        act(database_url, incident.id, "close")
        expired = link.get("/api/v1/unit-link")
        assert expired.status_code == 401 and "expired" in expired.text
    forged = token[:-4] + ("0000" if not token.endswith("0000") else "1111")
    answer = httpx.get(f"{api_url}/api/v1/unit-link", headers={"Authorization": f"Bearer {forged}"})
    assert answer.status_code == 401


# --- email -----------------------------------------------------------------------------------


class Mailbox:
    """What a real SMTP server (aiosmtpd) took, after STARTTLS and a login."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, EmailMessage]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        mail = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.messages.append((envelope, mail))
        return "250 OK"


def _login(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
           auth_data: Any) -> AuthResult:  # fmt: skip
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"alerts",
        b"mail-pass",
    )
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535


@pytest.fixture
def smtp_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, Mailbox]]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # the client trusts this CA alone
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, tls_context=context,
                            require_starttls=True, authenticator=_login,
                            auth_require_tls=True)  # fmt: skip
    controller.start()
    try:
        yield port, mailbox
    finally:
        controller.stop()


def mail_route(admin: httpx.Client, port: int, password: str) -> None:
    channel(admin, id="duty-mail", kind="email", url=f"smtp://alerts@127.0.0.1:{port}",
            secret=password, email={"to": ["duty@example.cn"], "sender": "hub@example.cn"})  # fmt: skip
    route(admin, id="mail", channels=["duty-mail"])


def test_email_goes_through_smtp_with_starttls(
    admin: httpx.Client, database_url: str, smtp_server: tuple[int, Mailbox]
) -> None:
    port, mailbox = smtp_server
    mail_route(admin, port, "mail-pass")
    with running_notifier(database_url):
        open_incident(database_url, COMMUNITY)
        wait_until(lambda: mailbox.messages)
        # The server has the mail before the notifier commits what it answered.
        wait_until(lambda: [n for n in notifications(database_url) if n["status"] == "delivered"])
    envelope, mail = mailbox.messages[0]
    assert envelope.rcpt_tos == ["duty@example.cn"] and envelope.mail_from == "hub@example.cn"
    assert "烟感报警 3栋" in str(mail["Subject"])
    assert "楼村花园 3栋" in mail.get_content()
    [row] = notifications(database_url)
    assert row["status"] == "delivered" and row["last_status"] == 250


def test_a_wrong_smtp_password_fails_with_the_servers_answer(
    admin: httpx.Client, database_url: str, smtp_server: tuple[int, Mailbox]
) -> None:
    port, mailbox = smtp_server
    mail_route(admin, port, "wrong")
    with running_notifier(database_url):
        open_incident(database_url, COMMUNITY)
        row = wait_until(lambda: [n for n in notifications(database_url)
                                  if n["status"] == "failed"])[0]  # fmt: skip
    assert row["last_status"] == 535 and mailbox.messages == []


# --- senders killed mid-delivery -------------------------------------------------------------


class SlowWebhook(Webhook):
    """Takes its time over the first requests, so a sender can be killed while it waits."""

    def __init__(self, secret: str, slow: int, delay: float) -> None:
        super().__init__(secret)
        self.slow, self.delay = slow, delay
        self.seen = 0

    def check(self, request: Any) -> tuple[int, dict[str, Any]]:
        self.seen += 1
        if self.seen <= self.slow:
            self.lock.release()
            try:
                time.sleep(self.delay)
            finally:
                self.lock.acquire()
        return super().check(request)


@pytest.mark.slow
def test_senders_killed_mid_delivery_lose_nothing_and_resend_only_with_the_same_key(
    admin: httpx.Client, database_url: str, tmp_path: Path
) -> None:
    """Two `shaobing notify` processes; the one holding a request in flight is SIGKILLed: every
    notification is delivered after the restart, and a message received twice is the same
    delivery (one idempotency key)."""
    with serving(SlowWebhook("k", slow=3, delay=4.0)) as hook:
        channel(admin, id="hook", kind="webhook", url=hook.url, secret="k")
        route(admin, id="r", channels=["hook"])
        env = hub_env(SB_DATABASE_URL=database_url, SB_ADMIN_TOKEN=ADMIN_TOKEN,
                      SB_DATA_DIR=str(tmp_path / "data"))  # fmt: skip
        first = HubProcess("notify-1", ["notify"], env, tmp_path).start()
        second = HubProcess("notify-2", ["notify"], env, tmp_path).start()
        try:
            first.wait_ready()
            second.wait_ready()
            opened = [open_incident(database_url, COMMUNITY, title=f"火警 {n}", building=f"{n}栋")
                      for n in range(12)]  # fmt: skip
            wait_until(lambda: hook.seen >= 1)  # a request is in flight, held by the receiver
            holders = {n["claimed_by"] for n in notifications(database_url, status="sending")}
            first.kill()
            second.kill()  # both, mid-request: a restart finds their claims
            again = HubProcess("notify-3", ["notify"], env, tmp_path).start()
            again.wait_ready()
            wait_until(lambda: all(n["status"] == "delivered"
                                   for n in notifications(database_url))
                       and len(notifications(database_url)) == 12, timeout=60)  # fmt: skip
            again.stop()
        finally:
            for process in (first, second):
                if process.process and process.process.poll() is None:
                    process.kill()
    assert holders
    # The request in flight when its sender died still arrives; its notification was sent
    # again after the restart, under the same key.
    hook.wait_for(13, timeout=10)
    rows = notifications(database_url)
    assert {r["incident_id"] for r in rows} == {i.id for i in opened}
    key_of = {str(r["idempotency_key"]): r["incident_id"] for r in rows}
    received: dict[str, set[int]] = {}
    for request in hook.accepted:
        received.setdefault(request.headers["idempotency-key"], set()).add(
            request.json()["incident"]["id"])  # fmt: skip
    assert set(received) == set(key_of)  # every delivery arrived, under its own key
    assert all(ids == {key_of[k]} for k, ids in received.items())
    twice = [k for k in received if sum(r.headers["idempotency-key"] == k
                                        for r in hook.accepted) > 1]  # fmt: skip
    assert twice and all(sum(n["incident_id"] == key_of[k] for n in rows) == 1 for k in twice)
