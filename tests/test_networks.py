"""The client network an address counts as for the rate limits: IPv4 per address, IPv6 per
/64, anything else one "unknown" network."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from oidc_link.networks import UNKNOWN_NETWORK, client_network


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::ffff", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("fe80::1%eth0", "fe80::/64"),
    ],
)
def test_an_address_counts_as_its_network(address: str, network: str) -> None:
    assert client_network(address) == network


@pytest.mark.parametrize("address", ["", "unknown", "203.0.113.300", "2001:db8::g", "a, b"])
def test_anything_that_is_not_an_address_counts_as_one_unknown_network(address: str) -> None:
    assert client_network(address) == UNKNOWN_NETWORK


def _parsed_network(address: str) -> str:
    """What client_network answered before its IPv4 shortcut: ipaddress's parse, always."""
    try:
        parsed = ipaddress.ip_address(address.strip().split("%", 1)[0])
    except ValueError:
        return UNKNOWN_NETWORK
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


def test_the_ipv4_shortcut_answers_as_the_parse_on_every_kind_of_input() -> None:
    odd = ["00", "01", "010", "0255", "1000", "-1", "+1", "", " 1", "1 ", "1_0", "0x1", "a"]
    odd += ["\u0661", "\uff12"]  # digits, but not ASCII ones
    each = [str(number) for number in range(300)] + odd
    # Every kind of part at each of the four places, then mixed four at a time.
    quads = [
        ".".join(["7"] * place + [part] + ["7"] * (3 - place))
        for place in range(4)
        for part in each
    ]
    mixed = ["0", "9", "10", "199", "255", "256", "01", "", " 1", "\u0661"]
    quads += [".".join(quad) for quad in itertools.product(mixed, repeat=4)]
    short = ["0", "1", "255", "256", "01", "", "a"]
    others = [".".join(p) for n in (1, 2, 3, 5) for p in itertools.product(short, repeat=n)]
    fixed = [
        "255.255.255.255", "1.2.3.4.", ".1.2.3.4", "1..2.3", "1.2.3.4%eth0", "1.2.3.4%",
        "%1.2.3.4", " 1.2.3.4\n", "\t10.0.0.1 ", "1.2.3.4 5", "192.168.001.1", "1.2.3.4\x00",
        "::1.2.3.4", "::ffff:1.2.3.4", "1.2.3.4/32", "1.2.3.4:80", "1.2.3.4\u00a0",
        "\u00a01.2.3.4", "2001:db8::1", "",
    ]  # fmt: skip
    for address in fixed + quads + others:
        assert client_network(address) == _parsed_network(address), address
