"""The one HTTP client the web transports share: a bounded time per request, answers read as
status and body (and a JSON body's own error code, which the chat robots use)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from notify.delivery import Answer, by_status, no_answer

TIMEOUT_S = 10.0


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False)


async def post_json(
    http: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[Answer, Any]:
    """POST a JSON body; the answer by HTTP status, and the parsed reply (None if not JSON)."""
    try:
        response = await http.post(
            url, content=body, headers={"Content-Type": "application/json", **(headers or {})}
        )
    except httpx.HTTPError as exc:
        return no_answer(exc), None
    try:
        reply = json.loads(response.text) if response.text else None
    except ValueError:
        reply = None
    return by_status(response.status_code, response.text, response.headers.get("Retry-After")), (
        reply
    )


def dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str).encode()


ROBOT_BACKOFF_S = 60.0  # a robot over its rate: its limit is per minute


def robot_answer(
    answer: Answer, reply: Any, *, code_keys: tuple[str, ...], rate_limited: frozenset[int]
) -> Answer:
    """A chat robot answers HTTP 200 and says in its body whether it took the message: 0 is
    yes, its rate-limit codes mean later, any other code is final (a wrong key or sign)."""
    if answer.outcome != "delivered":
        return answer
    code = next((reply[k] for k in code_keys if isinstance(reply, dict) and k in reply), None)
    if not isinstance(code, int):
        return Answer("failed", answer.status, f"not the platform's answer: {answer.body}")
    if code == 0:
        return answer
    if code in rate_limited:
        return Answer("retry", answer.status, answer.body, ROBOT_BACKOFF_S)
    return Answer("failed", answer.status, answer.body)
