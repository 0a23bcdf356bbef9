"""Client networks: the unit an address-keyed rate limit counts.

IPv4 counts per address; IPv6 per /64, the smallest prefix a home or mobile line gets, so
one line cannot escape a limit by hopping between its own addresses.
"""

from __future__ import annotations

import ipaddress
import re

UNKNOWN_NETWORK = "unknown"
IPV6_PREFIX = 64
# An IPv4 address as ipaddress writes it (ASCII digits, no leading zero, each part at most
# 255): it counts as itself, with no parse (ipaddress's costs ~10 µs, at every email step).
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_WRITTEN_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")


def client_network(address: str) -> str:
    """The network ``address`` counts as: the IPv4 address itself, the IPv6 /64 it lies in
    (an IPv4-mapped IPv6 address counts as its IPv4 address), or "unknown" for anything
    that is not an address."""
    text = address.strip().split("%", 1)[0]
    if _WRITTEN_IPV4.fullmatch(text):
        return text
    try:
        parsed = ipaddress.ip_address(text)
    except ValueError:
        return UNKNOWN_NETWORK
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, IPV6_PREFIX), strict=False))
    return str(parsed)
