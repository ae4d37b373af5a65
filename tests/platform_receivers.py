"""Real HTTP receivers on loopback that check what the real platforms check: a webhook endpoint
that recomputes the HMAC, and the 企业微信, 钉钉 and 飞书 robots with their keys, signatures,
message shapes and their limit of 20 messages a minute. Each keeps what it received."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

ROBOT_RATE = 20  # per robot, per minute


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """The requests that passed the platform's checks, those refused, and answers to give
    (status, headers, delay in s) before the platform's own."""

    url: str = ""
    accepted: list[Received] = field(default_factory=list)
    refused: list[tuple[Received, str]] = field(default_factory=list)
    script: list[tuple[int, dict[str, str], float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, request: Received) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError

    def wait_for(self, n: int, timeout: float = 20) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.accepted) >= n:
                    return list(self.accepted)
            time.sleep(0.05)
        raise AssertionError(f"{n} wanted, {len(self.accepted)} received; refused: {self.refused}")

    def within_rate(self, request: Received) -> bool:
        recent = [r for r in self.accepted if request.at - r.at < 60]
        return len(recent) < ROBOT_RATE


class Webhook(Receiver):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def check(self, request: Received) -> tuple[int, dict[str, Any]]:
        expected = "sha256=" + hmac.new(self.secret.encode(), request.body,
                                        hashlib.sha256).hexdigest()  # fmt: skip
        if not hmac.compare_digest(request.headers.get("x-shaobing-signature", ""), expected):
            return 401, {"error": "bad signature"}
        if not request.headers.get("idempotency-key"):
            return 400, {"error": "no Idempotency-Key"}
        return 200, {"ok": True}


class WeComRobot(Receiver):
    """POST /cgi-bin/webhook/send?key=KEY; markdown content at most 4096 bytes."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def check(self, request: Received) -> tuple[int, dict[str, Any]]:
        if request.path != "/cgi-bin/webhook/send" or request.query.get("key") != self.key:
            return 200, {"errcode": 93000, "errmsg": "invalid webhook url"}
        body = request.json()
        kind = body.get("msgtype")
        if kind == "markdown":
            content = body.get("markdown", {}).get("content", "")
            if not content or len(content.encode()) > 4096:
                return 200, {"errcode": 40058, "errmsg": "markdown.content exceed max length"}
        elif kind == "text":
            if not body.get("text", {}).get("content"):
                return 200, {"errcode": 40058, "errmsg": "text.content empty"}
        else:
            return 200, {"errcode": 40008, "errmsg": "invalid message type"}
        if not self.within_rate(request):
            return 200, {"errcode": 45009, "errmsg": "api freq out of limit"}
        return 200, {"errcode": 0, "errmsg": "ok"}


class DingTalkRobot(Receiver):
    """POST /robot/send?access_token=...&timestamp=ms&sign=...: the sign recomputed from the
    secret, the timestamp within an hour; markdown with a title and text."""

    def __init__(self, access_token: str, secret: str) -> None:
        super().__init__()
        self.access_token = access_token
        self.secret = secret

    def check(self, request: Received) -> tuple[int, dict[str, Any]]:
        q = request.query
        if request.path != "/robot/send" or q.get("access_token") != self.access_token:
            return 200, {"errcode": 300001, "errmsg": "token is not exist"}
        try:
            timestamp = int(q.get("timestamp", ""))
        except ValueError:
            return 200, {"errcode": 310000, "errmsg": "invalid timestamp"}
        if abs(time.time() * 1000 - timestamp) > 3_600_000:
            return 200, {"errcode": 310000, "errmsg": "invalid timestamp"}
        digest = hmac.new(self.secret.encode(), f"{timestamp}\n{self.secret}".encode(),
                          hashlib.sha256).digest()  # fmt: skip
        if not hmac.compare_digest(unquote(q.get("sign", "")), base64.b64encode(digest).decode()):
            return 200, {"errcode": 310000, "errmsg": "sign not match"}
        body = request.json()
        markdown = body.get("markdown", {})
        if (
            body.get("msgtype") != "markdown"
            or not markdown.get("title")
            or not markdown.get("text")
        ):
            return 200, {"errcode": 40035, "errmsg": "missing markdown title or text"}
        if not self.within_rate(request):
            return 200, {"errcode": 130101, "errmsg": "send too fast"}
        return 200, {"errcode": 0, "errmsg": "ok"}


class FeishuBot(Receiver):
    """POST /open-apis/bot/v2/hook/<id>: `timestamp` (s) within an hour and `sign` in the body,
    HMAC-SHA256 keyed with timestamp + "\\n" + secret over an empty message."""

    def __init__(self, hook: str, secret: str) -> None:
        super().__init__()
        self.hook = hook
        self.secret = secret

    def check(self, request: Received) -> tuple[int, dict[str, Any]]:
        if request.path != f"/open-apis/bot/v2/hook/{self.hook}":
            return 404, {"code": 19001, "msg": "param invalid: incoming webhook access token"}
        body = request.json()
        timestamp = str(body.get("timestamp", ""))
        key = f"{timestamp}\n{self.secret}".encode()
        sign = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
        stale = not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 3600
        if stale or not hmac.compare_digest(str(body.get("sign", "")), sign):
            return 200, {"code": 19021, "msg": "sign match fail or timestamp is not within one"
                                              " hour from current time"}  # fmt: skip
        if body.get("msg_type") not in ("text", "post", "interactive", "image", "share_chat"):
            return 200, {"code": 19002, "msg": "params error, msg_type need"}
        if not self.within_rate(request):
            return 200, {"code": 11232, "msg": "frequency limited"}
        return 200, {"code": 0, "msg": "success", "data": {}}


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            request = Received(
                path=parts.path, query={k: v[0] for k, v in parse_qs(parts.query).items()},
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length), at=time.time(),
            )  # fmt: skip
            with receiver.lock:
                scripted = receiver.script.pop(0) if receiver.script else None
            if scripted is not None:
                status, headers, delay = scripted
                time.sleep(delay)
                with receiver.lock:
                    receiver.refused.append((request, f"scripted {status}"))
                self._answer(status, {"scripted": status}, headers)
                return
            with receiver.lock:
                status, answer = receiver.check(request)
                ok = status == 200 and answer.get("errcode", answer.get("code", 0)) == 0
                if ok:
                    receiver.accepted.append(request)
                else:
                    receiver.refused.append((request, json.dumps(answer, ensure_ascii=False)))
            self._answer(status, answer, {})

        def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
            data = json.dumps(body, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serving(receiver: Receiver, path: str = "/") -> Iterator[Receiver]:
    """Serve the receiver on a free loopback port; `receiver.url` is where to post."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
