"""Area-code rules and the credential hash format, without services."""

from __future__ import annotations

import pytest

from devices.credentials import generate_password, hash_password, verify_password
from hub.area_codes import (
    area_level,
    check_area_code,
    check_area_prefix,
    parent_code,
)


def test_hierarchy_of_a_community_code() -> None:
    assert check_area_code("440311001002") == "440311001002"
    assert area_level("440311001002").value == "community"
    assert parent_code("440311001002") == "440311001"
    assert [parent_code(c) for c in ("440311001", "440311")] == ["440311", "4403"]
    assert parent_code("4403") is None


@pytest.mark.parametrize("bad", ["", "44", "44031", "4403110", "44031100100", "abcd", "0011"])
def test_bad_codes(bad: str) -> None:
    with pytest.raises(ValueError):
        check_area_code(bad)


def test_prefixes() -> None:
    assert check_area_prefix("") == "" and check_area_prefix("4403") == "4403"
    with pytest.raises(ValueError):
        check_area_prefix("44-03")


def test_hash_is_salted_mosquitto_pbkdf2() -> None:
    password = generate_password()
    first, second = hash_password(password), hash_password(password)
    assert first != second  # salted
    assert first.startswith("$7$") and len(first.split("$")) == 5
    assert password not in first
    assert verify_password(password, first) and verify_password(password, second)
    assert not verify_password(password + "x", first)
    assert not verify_password(password, "$6$garbage")
    assert not verify_password(password, "$7$10$!!!$???")
