"""Every HTTP request to an address a client's configuration chooses (``jwks_uri``, back-channel
logout, webhooks): which addresses may be reached, redirects, one deadline, a size cap.
Nothing else opens a connection to such a URL; what the answer means is the caller's business.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urljoin, urlsplit

if TYPE_CHECKING:
    from oidc_link.config import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# A host name and port to the addresses it stands for (socket.getaddrinfo by default).
Resolver = Callable[[str, int], Sequence[Address]]

# Cloud instance metadata services: credentials live there (AWS, GCP, Azure; AWS's IPv6 one;
# Alibaba's, which is in the shared address space).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(text) for text in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
# RFC 6598: carrier-grade NAT, also used inside some clouds; not "private" to ipaddress.
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_BYTES = 16 * 1024
USER_AGENT = "oidc-link"


class OutboundError(Exception):
    """A fetch that was refused or failed; ``reason`` says why in a few words, without the
    URL's query. ``retryable``: a later attempt may succeed (a timeout, a dropped connection),
    unlike a refused address or an oversized answer."""

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class OutboundAnswer:
    """The last hop's answer: its status, headers and (for GET) body, never over the cap."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class _Hop:
    """One request: the URL's parts and the checked addresses we may connect to."""

    https: bool
    host: str
    port: int
    target: str  # path and query, what goes on the request line
    addresses: tuple[Address, ...]


def address_refusal(address: Address) -> str | None:
    """Why ``address`` may not be reached from here (a few words), or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # ::ffff:10.0.0.1 reaches 10.0.0.1: judge the address it stands for.
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if isinstance(address, ipaddress.IPv4Address) and address in SHARED_ADDRESS_SPACE:
        return "a shared (carrier-grade NAT) address"
    if address.is_private:
        return "a private address"
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        # What is left: documentation ranges, NAT64 and the like; none is a public server.
        return "a non-public address"
    return None


def for_log(url: str) -> str:
    """``url`` without user info, query or fragment: enough to say where, short, and free of
    anything a relying party might have put in its query string."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def resolve_host(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to (what a connection might be made to)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise OutboundError(f"cannot resolve {host}", retryable=True) from None
    addresses: list[Address] = []
    for *_, sockaddr in found:
        # An IPv6 sockaddr may carry a zone ("fe80::1%eth0"); the address is before it.
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class _Watchdog:
    """Cuts a connection when the fetch's deadline passes, whatever it is blocked on.

    Socket timeouts bound each read, not their sum: a server that sends a byte a second
    would hold a fetch for as long as it liked. Shutting the socket down from a timer thread
    ends any read at once. The base class's shutdown is called on purpose: SSLSocket's own
    would also drop its TLS state under the thread that is reading.
    """

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self._done = False
        self._timer = threading.Timer(max(seconds, 0.0), self._cut)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._timer.cancel()
        with self._lock:
            self._done = True

    def _cut(self) -> None:
        with self._lock:
            if self._done:
                return
            # The other side may have closed it already.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)


class Outbound:
    """HTTP(S) to addresses a client's configuration names, guarded at every hop.

    Each hop's host is resolved here and every address it resolves to is checked; the
    connection then goes to a checked address (the name stays in SNI, the certificate check
    and ``Host``), so DNS that changes its answer between check and connect gains nothing.
    Redirects are followed here, each one checked the same way and only to https. One
    deadline covers the whole fetch (connecting, TLS, every hop, the body; time spent
    resolving counts against it, though a resolver that hangs is bounded only by the
    system's own timeout), and a body over the cap is refused as soon as it passes it.

    ``exact_loopback`` (development, see ``for_settings``): a URI whose host is a loopback
    address or ``localhost`` may be fetched as given, over http too; a redirect to loopback
    is refused all the same. ``resolve``, ``public_stand_ins`` and ``ssl_context`` let tests
    stand a "public" host on a loopback address they name, with their own certificate.
    """

    def __init__(
        self,
        *,
        exact_loopback: bool = False,
        resolve: Resolver = resolve_host,
        public_stand_ins: frozenset[Address] = frozenset(),
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._exact_loopback = exact_loopback
        self._resolve = resolve
        self._stand_ins = public_stand_ins
        # Made on the first https fetch: loading the system's CA store takes tens of ms,
        # and most apps never fetch anything.
        self._ssl_context = ssl_context
        self._ssl_lock = threading.Lock()

    @classmethod
    def for_settings(cls, settings: Settings) -> Outbound:
        """Development is the sandbox Link mode: no real users, and the setup where a
        relying party under test serves its keys or logout endpoint on this machine."""
        return cls(exact_loopback=settings.is_sandbox)

    def get(
        self, url: str, *, accept: str, deadline: float, max_bytes: int, max_redirects: int
    ) -> OutboundAnswer:
        """GET ``url``, following up to ``max_redirects`` redirects to https."""
        return self._fetch("GET", url, None, {"Accept": accept}, deadline, max_bytes, max_redirects)

    def post_form(self, url: str, form: Mapping[str, str], *, deadline: float) -> OutboundAnswer:
        """POST ``form`` to ``url`` as given: no redirect is followed (a 3xx is the answer),
        and the body is not read, since the status says all a notice needs."""
        body = urlencode(form).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return self.post(url, body, headers, deadline=deadline)

    def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, deadline: float
    ) -> OutboundAnswer:
        """POST ``body`` with ``headers`` to ``url`` as given: no redirect is followed (a 3xx
        is the answer), and the answer's body is never read (a cap of zero bytes)."""
        return self._fetch("POST", url, body, headers, deadline, 0, 0)

    def _fetch(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        deadline: float,
        max_bytes: int,
        max_redirects: int,
    ) -> OutboundAnswer:
        until = time.monotonic() + deadline
        for hop_number in range(max_redirects + 1):
            hop = self._checked_hop(url, first=hop_number == 0)
            status, answer_headers, answer_body = self._exchange(
                hop, method, body, headers, until, deadline, max_bytes, max_redirects > 0
            )
            location = answer_headers.get("Location")
            if max_redirects == 0 or status not in REDIRECT_STATUSES or not location:
                return OutboundAnswer(status, answer_headers, answer_body)
            url = urljoin(url, location)
        raise OutboundError(f"more than {max_redirects} redirects")

    def _checked_hop(self, url: str, *, first: bool) -> _Hop:
        """The URL's parts and addresses, or OutboundError saying why it may not be reached."""
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise OutboundError("a URL with an invalid port") from None
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            raise OutboundError("not an http(s) URL")
        literal = _literal_address(host)
        # Only the URI the operator configured may be loopback, and only in development.
        loopback_exempt = (
            first
            and self._exact_loopback
            and (host == "localhost" or (literal is not None and literal.is_loopback))
        )
        port = port or (443 if parts.scheme == "https" else 80)
        addresses = [literal] if literal is not None else list(self._resolve(host, port))
        if not addresses:
            raise OutboundError(f"cannot resolve {host}", retryable=True)
        for address in addresses:
            if address in self._stand_ins or (loopback_exempt and address.is_loopback):
                continue
            refusal = address_refusal(address)
            if refusal is not None:
                hop = "a redirect to" if not first else "the URL's host"
                raise OutboundError(f"{hop} {host} is {refusal} ({address})")
        # After the addresses, so that a refused address is named as the reason.
        if parts.scheme != "https" and not loopback_exempt:
            raise OutboundError("a redirect to a non-https URL" if not first else "a non-https URL")
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        return _Hop(parts.scheme == "https", host, port, target, tuple(addresses))

    def _exchange(
        self,
        hop: _Hop,
        method: str,
        body: bytes | None,
        headers: Mapping[str, str],
        until: float,
        deadline: float,
        max_bytes: int,
        follow_redirects: bool,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One request on a fresh connection to a checked address; reads the body (GET)
        unless the answer is a redirect about to be followed."""
        sock = self._connect(hop, until, deadline)
        try:
            with _Watchdog(sock, until - time.monotonic()):
                try:
                    if isinstance(sock, ssl.SSLSocket):
                        sock.do_handshake()
                    connection = _connection_on(sock, hop)
                    connection.request(
                        method,
                        hop.target,
                        body,
                        {"User-Agent": USER_AGENT, "Connection": "close", **headers},
                    )
                    response = connection.getresponse()
                    answer_headers = {name.title(): value for name, value in response.getheaders()}
                    following = follow_redirects and response.status in REDIRECT_STATUSES
                    if method != "GET" or following:
                        return response.status, answer_headers, b""
                    content = _read_capped(response, max_bytes, until, deadline)
                    return response.status, answer_headers, content
                except ssl.SSLCertVerificationError as error:
                    raise OutboundError(
                        f"{hop.host}: TLS certificate refused ({error.verify_message})"
                    ) from None
                except (OSError, http.client.HTTPException) as error:
                    if time.monotonic() >= until:
                        raise OutboundError(
                            f"took longer than {deadline:g} s", retryable=True
                        ) from None
                    raise OutboundError(
                        f"{hop.host}: {type(error).__name__}", retryable=True
                    ) from None
        finally:
            sock.close()

    def _connect(self, hop: _Hop, until: float, deadline: float) -> socket.socket:
        """A TCP connection to the first checked address that answers (TLS not yet begun)."""
        failure = "no address"
        for address in hop.addresses:
            left = until - time.monotonic()
            if left <= 0:
                raise OutboundError(f"took longer than {deadline:g} s", retryable=True)
            try:
                sock = socket.create_connection((str(address), hop.port), timeout=left)
            except OSError as error:
                failure = type(error).__name__
                continue
            sock.settimeout(max(until - time.monotonic(), 0.001))
            if not hop.https:
                return sock
            try:
                return self._tls().wrap_socket(
                    sock, server_hostname=hop.host, do_handshake_on_connect=False
                )
            except (OSError, ValueError):
                sock.close()
                raise OutboundError(f"{hop.host}: TLS could not start", retryable=True) from None
        raise OutboundError(f"cannot connect to {hop.host} ({failure})", retryable=True)

    def _tls(self) -> ssl.SSLContext:
        with self._ssl_lock:
            if self._ssl_context is None:
                self._ssl_context = ssl.create_default_context()
            return self._ssl_context


def _literal_address(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _connection_on(sock: socket.socket, hop: _Hop) -> http.client.HTTPConnection:
    """An http.client connection that sends on ``sock`` (already connected to the checked
    address) with the URL's host in ``Host``."""
    connection_class = http.client.HTTPSConnection if hop.https else http.client.HTTPConnection
    connection = connection_class(hop.host, hop.port)
    connection.sock = sock
    return connection


def _read_capped(
    response: http.client.HTTPResponse, max_bytes: int, until: float, deadline: float
) -> bytes:
    """The body, up to ``max_bytes``. A connection the watchdog cut reads as a short body,
    which http.client does not flag: the clock and the declared length tell."""
    declared = response.getheader("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise OutboundError(f"an answer of more than {max_bytes} bytes")
    body = bytearray()
    while chunk := response.read(CHUNK_BYTES):
        body.extend(chunk)
        if len(body) > max_bytes:
            raise OutboundError(f"an answer of more than {max_bytes} bytes")
    if time.monotonic() >= until:
        raise OutboundError(f"took longer than {deadline:g} s", retryable=True)
    if declared is not None and declared.isdigit() and len(body) < int(declared):
        raise OutboundError("an answer cut short", retryable=True)
    return bytes(body)
