"""Addresses and display names that no CRM column can hold (audit 17a F1): an address over 254 characters
(RFC 5321) is dropped like any unusable address; a display name is cut at 300 characters."""

from __future__ import annotations

from sync_service.parsing.addresses import MAX_ADDRESS_CHARS, MAX_NAME_CHARS, parse_addresses


def test_an_address_over_254_characters_is_dropped_like_an_invalid_one() -> None:
    long_domain = ".".join(["sub" * 20] * 20) + ".acme.example"
    found = parse_addresses([f"Zed <zed@{long_domain}>, Bob <bob@acme.example>", "nodomain@"])
    assert [a.email for a in found] == ["bob@acme.example"]
    edge = "a" * (MAX_ADDRESS_CHARS - len("@acme.example")) + "@acme.example"
    assert [a.email for a in parse_addresses([edge])] == [edge]


def test_a_long_display_name_is_cut() -> None:
    [address] = parse_addresses([f'"{"N" * 5000}" <bob@acme.example>'])
    assert address.name == "N" * MAX_NAME_CHARS
    [plain] = parse_addresses(["N" * 5000 + " <bob@acme.example>"])
    assert len(plain.name) == MAX_NAME_CHARS
