"""The 钉钉 custom robot with 加签: the URL gets `timestamp` (ms) and `sign`, the URL-encoded
Base64 of HMAC-SHA256(key=secret, message=timestamp + "\n" + secret); Markdown; `at` mobiles
(and the text names them, which is what makes DingTalk ring them)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import quote_plus

import httpx

from notify.delivery import Answer
from notify.transports import Outgoing, secret_of
from notify.transports.http import dumps, post_json, robot_answer

RATE_LIMITED = frozenset({130101})  # "send too fast"


def sign(secret: str, timestamp_ms: int) -> str:
    message = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest))


def signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={sign(secret, timestamp_ms)}"


class DingTalk:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def send(self, message: Outgoing) -> Answer:
        mentions = message.mentions
        text = message.text
        if mentions.mobiles:
            text += "\n\n" + " ".join(f"@{mobile}" for mobile in mentions.mobiles)
        body = {
            "msgtype": "markdown",
            "markdown": {"title": message.title, "text": text},
            "at": {
                "atMobiles": mentions.mobiles,
                "atUserIds": mentions.user_ids,
                "isAtAll": mentions.all,
            },
        }
        url = signed_url(message.channel.url, secret_of(message.channel), int(time.time() * 1000))
        answer, reply = await post_json(self.http, url, dumps(body))
        return robot_answer(answer, reply, code_keys=("errcode",), rate_limited=RATE_LIMITED)
