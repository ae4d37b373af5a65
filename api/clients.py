"""Who the client is: the TCP peer, unless that peer is one of our reverse proxies.

Only a proxy named in SB_TRUSTED_PROXIES is believed about the address it forwards. From it,
X-Forwarded-For is read from the right (each proxy appends the address it was reached from),
past our own proxies, to the first address that is not one of them: everything left of that
came from the client and may be made up. Without X-Forwarded-For, X-Real-IP is taken. Every
per-client budget (failed authentications, the public intake's reports and reads, receipt
guessing) is keyed by this address, so a client cannot reset its budget by sending a new
header, and clients behind the proxy do not share one budget.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from starlette.types import ASGIApp, Receive, Scope, Send

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        return ip_address(text)
    except ValueError:
        return None


def _trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def real_client(
    peer: str, headers: Iterable[tuple[bytes, bytes]], networks: tuple[Network, ...]
) -> str:
    """The client's address: `peer`, or what a trusted proxy forwarded (see the module)."""
    peer_address = _address(peer)
    if not networks or peer_address is None or not _trusted(peer_address, networks):
        return peer
    forwarded: list[str] = []
    real_ip: str | None = None
    for name, value in headers:
        if name == b"x-forwarded-for":
            forwarded += value.decode("latin-1").split(",")
        elif name == b"x-real-ip":
            real_ip = value.decode("latin-1")
    chain = forwarded or ([real_ip] if real_ip else [])
    client = peer
    for hop in reversed(chain):
        address = _address(hop)
        if address is None:
            break  # garbage: what lies to its left cannot be told apart from lies
        client = str(address)
        if not _trusted(address, networks):
            break
    return client


class ClientAddressMiddleware:
    """Puts the real client (above) into the ASGI scope, where `request.client` reads it."""

    def __init__(self, app: ASGIApp, *, trusted: tuple[Network, ...]) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope.get("client"):
            host, port = scope["client"]
            client = real_client(host, scope.get("headers", []), self.trusted)
            if client != host:
                scope = {**scope, "client": (client, port)}
        await self.app(scope, receive, send)
