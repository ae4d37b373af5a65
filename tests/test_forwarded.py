"""Per-client limits keyed by the real client: a forwarded address is believed only from a
proxy in SB_TRUSTED_PROXIES (design §6).

Every request here comes from 127.0.0.1. Untrusted, a new X-Forwarded-For per request must
not buy a new budget; trusted (as compose's nginx is), each forwarded client has its own.
Covered: the public intake's reports and reads, receipt guessing, failed authentications.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import ip_address
from itertools import count
from pathlib import Path

import httpx
import pytest
import yaml

from api.clients import real_client
from hub.settings import Settings, load_settings
from tests.services import api_server
from tests.test_registry_api import assert_error, register_area
from tests.test_reports import intake_key, photo

REPORT = {"category": "public_safety", "title": "路灯不亮"}
_addresses = count(1)


def new_address() -> str:
    n = next(_addresses)
    return f"203.0.{n // 250}.{n % 250 + 1}"


def limited(settings: Settings, **update: object) -> Settings:
    base = {"public_reports_per_minute": 2, "public_reads_per_minute": 3,
            "auth_failure_limit": 3}  # fmt: skip
    return settings.model_copy(update={**base, **update})


@pytest.fixture
def key(admin: httpx.Client) -> str:
    register_area(admin)
    return intake_key(admin)


@pytest.fixture
def receipt(admin: httpx.Client, key: str) -> str:
    filed = admin.post("/api/v1/public/reports", json=REPORT, headers={"X-Intake-Key": key})
    assert filed.status_code == 201, filed.text
    return str(filed.json()["receipt"])


@pytest.fixture
def untrusted(settings: Settings) -> Iterator[httpx.Client]:
    with api_server(limited(settings)) as url, httpx.Client(base_url=url) as client:
        yield client


@pytest.fixture
def behind_proxy(settings: Settings) -> Iterator[httpx.Client]:
    """The API with 127.0.0.1 (and a second proxy tier, 10.9.0.0/16) as its proxies."""
    proxied = limited(settings, trusted_proxies=["127.0.0.1/32", "10.9.0.0/16"])
    with api_server(proxied) as url, httpx.Client(base_url=url) as client:
        yield client


def report(client: httpx.Client, key: str, **headers: str) -> httpx.Response:
    return client.post("/api/v1/public/reports", json=REPORT,
                       headers={"X-Intake-Key": key, **headers})  # fmt: skip


def look_up(client: httpx.Client, receipt: str, **headers: str) -> httpx.Response:
    return client.get(f"/api/v1/public/reports/{receipt}", headers=headers)


def bad_token(client: httpx.Client, **headers: str) -> httpx.Response:
    return client.get("/api/v1/devices",
                      headers={"Authorization": "Bearer wrong-token", **headers})  # fmt: skip


def guess(client: httpx.Client, **headers: str) -> httpx.Response:
    return look_up(client, "SB-" + "A" * 20, **headers)


def test_an_untrusted_peer_cannot_buy_budgets_with_forwarded_headers(
    untrusted: httpx.Client, key: str, receipt: str
) -> None:
    def rotating() -> dict[str, str]:
        return {"X-Forwarded-For": new_address(), "X-Real-IP": new_address()}

    assert [report(untrusted, key, **rotating()).status_code for _ in range(2)] == [201, 201]
    assert_error(report(untrusted, key, **rotating()), 429, "too_many_requests")
    assert [look_up(untrusted, receipt, **rotating()).status_code for _ in range(3)] == [200] * 3
    assert_error(look_up(untrusted, receipt, **rotating()), 429, "too_many_requests")
    assert [bad_token(untrusted, **rotating()).status_code for _ in range(3)] == [401] * 3
    assert_error(bad_token(untrusted, **rotating()), 429, "too_many_requests")


def test_receipt_guessing_is_limited(settings: Settings, key: str, receipt: str) -> None:
    """Lookups of receipts that do not exist count as failed authentications, whatever the
    reads budget, on each route that takes a receipt."""
    roomy = limited(settings, public_reads_per_minute=1000, public_reports_per_minute=1000)
    for route in ("", "/rating", "/attachments"):
        with api_server(roomy) as url, httpx.Client(base_url=url, timeout=30) as client:
            codes = [_guess_on(client, chr(ord("B") + n) * 20, route).status_code
                     for n in range(4)]  # fmt: skip
            assert codes == [404, 404, 404, 429], (route, codes)
            # Limited as a guesser: even the right receipt waits now (as a right token would).
            assert_error(look_up(client, receipt), 429, "too_many_requests")


def _guess_on(client: httpx.Client, letters: str, route: str) -> httpx.Response:
    path = f"/api/v1/public/reports/SB-{letters}{route}"
    if route == "/rating":
        return client.post(path, json={"rating": 5})
    if route == "/attachments":
        return client.post(path, files={"file": ("a.png", photo("PNG"), "image/png")})
    return client.get(path)


def test_behind_a_trusted_proxy_each_client_has_its_own_budget(
    behind_proxy: httpx.Client, key: str, receipt: str
) -> None:
    first, second = new_address(), new_address()
    for _ in range(2):
        assert report(behind_proxy, key, **{"X-Forwarded-For": first}).status_code == 201
    assert_error(report(behind_proxy, key, **{"X-Forwarded-For": first}), 429, "too_many_requests")
    # Another resident behind the same proxy is not held back by the first.
    assert report(behind_proxy, key, **{"X-Forwarded-For": second}).status_code == 201
    # Whatever a client puts left of what the proxy appended is its own invention: the
    # right-most address not of a proxy (here behind two tiers) is the client.
    spoofed = {"X-Forwarded-For": f"{new_address()}, {first}, 10.9.0.5"}
    assert_error(report(behind_proxy, key, **spoofed), 429, "too_many_requests")
    # X-Real-IP serves where there is no X-Forwarded-For.
    assert_error(report(behind_proxy, key, **{"X-Real-IP": first}), 429, "too_many_requests")
    assert report(behind_proxy, key, **{"X-Real-IP": new_address()}).status_code == 201

    third = new_address()
    for _ in range(3):
        assert bad_token(behind_proxy, **{"X-Forwarded-For": third}).status_code == 401
    assert_error(bad_token(behind_proxy, **{"X-Forwarded-For": third}), 429, "too_many_requests")
    assert bad_token(behind_proxy, **{"X-Forwarded-For": new_address()}).status_code == 401
    for _ in range(3):
        assert guess(behind_proxy, **{"X-Forwarded-For": third}).status_code == 429
        assert look_up(behind_proxy, receipt, **{"X-Forwarded-For": second}).status_code == 200
    assert_error(look_up(behind_proxy, receipt, **{"X-Forwarded-For": second}), 429,
                 "too_many_requests")  # fmt: skip


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        ("10.0.0.2", [(b"x-forwarded-for", b"198.51.100.7")], "10.0.0.2"),  # not a proxy
        ("127.0.0.1", [(b"x-forwarded-for", b"198.51.100.7")], "198.51.100.7"),
        ("127.0.0.1", [(b"x-forwarded-for", b"1.1.1.1, 198.51.100.7")], "198.51.100.7"),
        (
            "127.0.0.1",
            [(b"x-forwarded-for", b"1.1.1.1"), (b"x-forwarded-for", b"198.51.100.7")],
            "198.51.100.7",
        ),
        ("127.0.0.1", [(b"x-forwarded-for", b"not-an-ip, 198.51.100.7")], "198.51.100.7"),
        ("127.0.0.1", [(b"x-forwarded-for", b"198.51.100.7, garbage")], "127.0.0.1"),
        ("127.0.0.1", [(b"x-forwarded-for", b"198.51.100.7:4431")], "198.51.100.7"),
        ("127.0.0.1", [(b"x-forwarded-for", b"[2001:db8::7]:443")], "2001:db8::7"),
        ("127.0.0.1", [(b"x-forwarded-for", b"127.0.0.1")], "127.0.0.1"),  # all proxies
        ("127.0.0.1", [(b"x-real-ip", b"198.51.100.9")], "198.51.100.9"),
        ("127.0.0.1", [], "127.0.0.1"),
        ("::ffff:127.0.0.1", [(b"x-forwarded-for", b"198.51.100.7")], "198.51.100.7"),
    ],
)
def test_the_real_client_of_a_request(
    peer: str, headers: list[tuple[bytes, bytes]], expected: str
) -> None:
    networks = load_settings(trusted_proxies="127.0.0.1").trusted_networks
    assert real_client(peer, headers, networks) == expected
    assert real_client(peer, headers, ()) == peer  # nobody trusted: the peer, always


def test_trusted_proxies_must_be_addresses() -> None:
    assert load_settings(trusted_proxies="10.0.0.1, 10.1.0.0/16").trusted_proxies == [
        "10.0.0.1/32", "10.1.0.0/16"]  # fmt: skip
    with pytest.raises(ValueError, match="SB_TRUSTED_PROXIES"):
        load_settings(trusted_proxies="nginx")


def test_compose_trusts_its_own_nginx_and_nothing_else() -> None:
    """docker/compose.yaml: every API replica believes the proxy's forwarded addresses (so that
    residents behind it do not share one budget), and only the proxy's."""
    compose = yaml.safe_load((Path(__file__).parents[1] / "docker" / "compose.yaml").read_text())
    proxy = ip_address(compose["services"]["proxy"]["networks"]["default"]["ipv4_address"])
    apis = [s for s in compose["services"].values() if s.get("command") == ["shaobing", "api"]]
    assert len(apis) == 2
    for api in apis:
        trusted = load_settings(trusted_proxies=api["environment"]["SB_TRUSTED_PROXIES"])
        assert [str(n) for n in trusted.trusted_networks] == [f"{proxy}/32"]
