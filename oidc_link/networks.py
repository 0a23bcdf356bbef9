"""Client networks: the unit an address-keyed rate limit counts.

IPv4 counts per address; IPv6 per /64, the smallest prefix a home or mobile line gets, so
one line cannot escape a limit by hopping between its own addresses.
"""

from __future__ import annotations

import ipaddress

UNKNOWN_NETWORK = "unknown"
IPV6_PREFIX = 64


def client_network(address: str) -> str:
    """The network ``address`` counts as: the IPv4 address itself, the IPv6 /64 it lies in
    (an IPv4-mapped IPv6 address counts as its IPv4 address), or "unknown" for anything
    that is not an address."""
    try:
        parsed = ipaddress.ip_address(address.strip().split("%", 1)[0])
    except ValueError:
        return UNKNOWN_NETWORK
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, IPV6_PREFIX), strict=False))
    return str(parsed)
