"""The 飞书 custom bot with 签名校验: the body carries `timestamp` (seconds) and `sign`, the
Base64 of HMAC-SHA256 with key timestamp + "\n" + secret over an empty message; the message is
a card with a Markdown element (`<at id=all></at>` calls everyone out)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import httpx

from notify.delivery import Answer
from notify.transports import Outgoing, secret_of
from notify.transports.http import dumps, post_json, robot_answer

RATE_LIMITED = frozenset({11232, 9499})  # frequency limited
_COLOURS = {"🔴": "red", "🟠": "orange", "🔵": "blue"}


def sign(secret: str, timestamp_s: int) -> str:
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


class Feishu:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def send(self, message: Outgoing) -> Answer:
        mentions = message.mentions
        text = message.text
        if mentions.user_ids or mentions.all:
            ids = [*mentions.user_ids, *(["all"] if mentions.all else [])]
            text += "\n" + " ".join(f"<at id={user}></at>" for user in ids)
        colour = next((c for mark, c in _COLOURS.items() if message.title.startswith(mark)), "blue")
        timestamp = int(time.time())
        body = {
            "timestamp": str(timestamp),
            "sign": sign(secret_of(message.channel), timestamp),
            "msg_type": "interactive",
            "card": {
                "header": {
                    "title": {"tag": "plain_text", "content": message.title},
                    "template": colour,
                },
                "elements": [{"tag": "markdown", "content": text}],
            },
        }
        answer, reply = await post_json(self.http, message.channel.url, dumps(body))
        return robot_answer(
            answer, reply, code_keys=("code", "StatusCode"), rate_limited=RATE_LIMITED
        )
