"""The client network an address counts as for the rate limits: IPv4 per address, IPv6 per
/64, anything else one "unknown" network."""

from __future__ import annotations

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
