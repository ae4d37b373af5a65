"""The 企业微信 group robot: a Markdown message (`<@userid>` calls people out in it); mobiles
can be called out only by a text message, so one follows when the channel or unit names any."""

from __future__ import annotations

import httpx

from notify.delivery import Answer
from notify.transports import Outgoing
from notify.transports.http import dumps, post_json, robot_answer

MAX_BYTES = 4096  # the robot's limit for a Markdown message
RATE_LIMITED = frozenset({45009})


def fit(text: str, limit: int = MAX_BYTES) -> str:
    """Cut to the byte limit on a character boundary, saying so."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 8].decode(errors="ignore") + "\n……"


class WeCom:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def send(self, message: Outgoing) -> Answer:
        mentions = message.mentions
        text = message.text
        if mentions.user_ids:
            text += "\n" + " ".join(f"<@{user}>" for user in mentions.user_ids)
        body = {"msgtype": "markdown", "markdown": {"content": fit(text)}}
        answer = await self._post(message.channel.url, dumps(body))
        if answer.outcome != "delivered" or not (mentions.mobiles or mentions.all):
            return answer
        call = {
            "msgtype": "text",
            "text": {
                "content": message.title,
                "mentioned_mobile_list": [*mentions.mobiles, *(["@all"] if mentions.all else [])],
            },
        }
        return await self._post(message.channel.url, dumps(call))

    async def _post(self, url: str, body: bytes) -> Answer:
        answer, reply = await post_json(self.http, url, body)
        return robot_answer(answer, reply, code_keys=("errcode",), rate_limited=RATE_LIMITED)
