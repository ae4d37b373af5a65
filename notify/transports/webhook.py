"""A webhook: one incident per request, JSON as the API shows the incident, signed with the
channel's secret (`X-Shaobing-Signature: sha256=<HMAC of the raw body>`), with an
`Idempotency-Key` that stays the same across retries of one delivery."""

from __future__ import annotations

import hashlib
import hmac

import httpx

from notify.delivery import Answer
from notify.transports import Outgoing, secret_of
from notify.transports.http import dumps, post_json


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Webhook:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def send(self, message: Outgoing) -> Answer:
        [item] = message.items  # webhooks are never grouped
        body = dumps(
            {
                "event": item.event,
                "incident": item.incident,
                "notification_id": item.notification_id,
                "title": message.title,
                "text": message.text,
                "sent_at": message.sent_at.isoformat(),
            }
        )
        headers = {"Idempotency-Key": item.idempotency_key, "X-Shaobing-Event": item.event}
        if secret := secret_of(message.channel):
            headers["X-Shaobing-Signature"] = signature(secret, body)
        answer, _ = await post_json(self.http, message.channel.url, body, headers)
        return answer
