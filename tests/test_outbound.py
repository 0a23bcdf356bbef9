"""The guarded outbound fetch (oidc_link/outbound.py): every hop's addresses checked before
connecting, redirects only to https, one deadline for the whole fetch, a size cap.

Real HTTP(S) listeners run in threads on loopback. A "public" host is a listener on
127.0.0.2 that the fetch is told (through its constructor) to treat as public, with a name
only our resolver knows and a certificate only our TLS context trusts; the "internal"
service a client would like to probe is a listener on 127.0.0.1.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from oidc_link.outbound import Address, Outbound, OutboundError, address_refusal, for_log

PUBLIC_NAME = "keys.example.test"
INTERNAL_NAME = "internal.example.test"
STAND_IN = ipaddress.ip_address("127.0.0.2")  # plays a public address
INTERNAL = ipaddress.ip_address("127.0.0.1")

Route = Callable[[BaseHTTPRequestHandler], None]


# --- A certificate for the test names, and a TLS context that trusts only it. ---


@dataclass(frozen=True)
class Certificate:
    cert_file: Path
    key_file: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert_file))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "oidc-link test")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName(PUBLIC_NAME), x509.DNSName(INTERNAL_NAME), x509.DNSName("localhost")]
    addresses = [x509.IPAddress(STAND_IN), x509.IPAddress(INTERNAL)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(names + addresses), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_file, key_file)


# --- Listeners: real HTTP servers on loopback addresses. ---


@dataclass
class Seen:
    path: str
    host: str | None
    server_name: str | None


@dataclass
class Listener:
    """An HTTP(S) server on ``address``: each path answers by its route (404 otherwise);
    every request is recorded, with the TLS server name (SNI) the client sent."""

    address: Address
    certificate: Certificate | None = None
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        listener = self
        server_names: dict[int, str | None] = {}

        class Handler(BaseHTTPRequestHandler):
            def setup(self) -> None:
                listener.connections += 1
                super().setup()

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self._handle()

            def _handle(self) -> None:
                name = server_names.get(id(self.connection))
                listener.seen.append(Seen(self.path, self.headers.get("Host"), name))
                route = listener.routes.get(self.path.partition("?")[0])
                if route is None:
                    answer(self, 404, b"")
                else:
                    route(self)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._http = ThreadingHTTPServer((str(self.address), 0), Handler)
        self._http.daemon_threads = True
        if self.certificate is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.certificate.cert_file, self.certificate.key_file)

            def remember_name(sock: ssl.SSLSocket, name: str | None, _: Any) -> None:
                server_names[id(sock)] = name

            context.sni_callback = remember_name
            self._http.socket = context.wrap_socket(self._http.socket, server_side=True)
        self.port = self._http.server_address[1]
        threading.Thread(target=self._http.serve_forever, args=(0.01,), daemon=True).start()

    def url(self, path: str, host: str | None = None) -> str:
        scheme = "https" if self.certificate else "http"
        return f"{scheme}://{host or self.address}:{self.port}{path}"

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


def answer(handler: BaseHTTPRequestHandler, status: int, body: bytes, **headers: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    handler.end_headers()
    handler.wfile.write(body)


def redirect_to(location: str) -> Route:
    return lambda handler: answer(handler, 302, b"", Location=location)


def ok(body: bytes = b'{"keys": []}') -> Route:
    return lambda handler: answer(handler, 200, body, Content_Type="application/json")


@pytest.fixture
def public(certificate: Certificate) -> Iterator[Listener]:
    listener = Listener(STAND_IN, certificate)
    yield listener
    listener.close()


@pytest.fixture
def internal(certificate: Certificate) -> Iterator[Listener]:
    """An internal https service: what nobody outside may reach through us."""
    listener = Listener(INTERNAL, certificate, routes={"/admin": ok(b"internal secrets")})
    yield listener
    listener.close()


@pytest.fixture
def internal_http() -> Iterator[Listener]:
    """A plain-http service on loopback: a relying party under development, or a target."""
    listener = Listener(INTERNAL, routes={"/jwks.json": ok(), "/admin": ok(b"internal")})
    yield listener
    listener.close()


def resolver(**extra: str) -> Callable[[str, int], list[Address]]:
    """Our DNS: the test names, and any name=address given (dots as underscores)."""
    table = {PUBLIC_NAME: [STAND_IN], INTERNAL_NAME: [INTERNAL]}
    for name, address in extra.items():
        table[name.replace("_", ".")] = [ipaddress.ip_address(a) for a in address.split(",")]

    def resolve(host: str, port: int) -> list[Address]:
        if host not in table:
            raise OutboundError(f"cannot resolve {host}", retryable=True)
        return table[host]

    return resolve


def outbound(certificate: Certificate, *, development: bool = False, **names: str) -> Outbound:
    return Outbound(
        exact_loopback=development,
        resolve=resolver(**names),
        public_stand_ins=frozenset({STAND_IN}),
        ssl_context=certificate.client_context(),
    )


def get(fetch: Outbound, url: str, *, deadline: float = 5.0, max_bytes: int = 1024, hops: int = 3):
    return fetch.get(
        url, accept="application/json", deadline=deadline, max_bytes=max_bytes, max_redirects=hops
    )


# --- Where a fetch may go. ---


def test_a_public_host_is_reached_at_its_checked_address_under_its_own_name(
    certificate: Certificate, public: Listener
) -> None:
    public.routes["/jwks.json"] = ok()

    fetched = get(outbound(certificate), public.url("/jwks.json", PUBLIC_NAME))

    assert (fetched.status, fetched.body) == (200, b'{"keys": []}')
    # Connected to the address we checked, yet the name stays in SNI and Host.
    assert public.seen == [Seen("/jwks.json", f"{PUBLIC_NAME}:{public.port}", PUBLIC_NAME)]


def test_a_name_that_turns_to_loopback_after_the_check_is_still_reached_where_checked(
    certificate: Certificate, public: Listener, internal: Listener
) -> None:
    """DNS rebinding: the first answer is public, every later one loopback. The fetch asks
    once per hop and connects to the address it checked."""
    answers = iter([[STAND_IN]])

    def rebinding(host: str, port: int) -> list[Address]:
        return next(answers, [INTERNAL])

    public.routes["/jwks.json"] = ok()
    fetch = Outbound(
        resolve=rebinding,
        public_stand_ins=frozenset({STAND_IN}),
        ssl_context=certificate.client_context(),
    )

    assert get(fetch, f"https://{PUBLIC_NAME}:{public.port}/jwks.json").status == 200
    assert internal.connections == 0
    # The port is the public listener's: had the fetch asked again, it would have gone to
    # 127.0.0.1, where nothing (or the internal service) listens.


@pytest.mark.parametrize("by_name", [False, True], ids=["address", "name"])
def test_a_redirect_to_a_loopback_listener_is_refused_before_connecting(
    certificate: Certificate, public: Listener, internal: Listener, by_name: bool
) -> None:
    target = internal.url("/admin", INTERNAL_NAME if by_name else None)
    public.routes["/jwks.json"] = redirect_to(target)

    with pytest.raises(OutboundError) as refused:
        get(outbound(certificate), public.url("/jwks.json", PUBLIC_NAME))

    assert "a loopback address (127.0.0.1)" in refused.value.reason
    assert refused.value.reason.startswith("a redirect to")
    assert not refused.value.retryable
    assert internal.connections == 0


def test_a_redirect_to_loopback_is_refused_in_development_too(
    certificate: Certificate, public: Listener, internal: Listener
) -> None:
    public.routes["/jwks.json"] = redirect_to(internal.url("/admin"))

    with pytest.raises(OutboundError) as refused:
        get(outbound(certificate, development=True), public.url("/jwks.json", PUBLIC_NAME))

    assert "loopback" in refused.value.reason
    assert internal.connections == 0


def test_a_loopback_uri_that_redirects_to_another_loopback_port_is_refused_in_development(
    certificate: Certificate, internal_http: Listener, internal: Listener
) -> None:
    """Only the exact URI configured may be loopback: not where it sends us."""
    internal_http.routes["/jwks.json"] = redirect_to(internal.url("/admin"))

    with pytest.raises(OutboundError) as refused:
        get(outbound(certificate, development=True), internal_http.url("/jwks.json"))

    assert "loopback" in refused.value.reason
    assert internal.connections == 0


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("10.1.2.3", "a private address"),
        ("172.16.0.9", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("169.254.10.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("100.100.100.200", "a cloud metadata address"),
        ("100.64.0.1", "a shared (carrier-grade NAT) address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:10.0.0.1", "a private address"),
        ("::1", "a loopback address"),
        ("0.0.0.0", "a private address"),  # noqa: S104 (an address refused, not bound)
        ("224.0.0.1", "a reserved address"),
        ("240.0.0.1", "a private address"),
        ("192.0.2.10", "a private address"),
    ],
)
def test_hosts_on_private_link_local_metadata_and_other_inner_addresses_are_refused(
    certificate: Certificate, address: str, kind: str
) -> None:
    fetch = outbound(certificate, inner_example_test=address)

    with pytest.raises(OutboundError) as refused:
        get(fetch, "https://inner.example.test/jwks.json")

    parsed = ipaddress.ip_address(address)
    assert refused.value.reason == f"the URL's host inner.example.test is {kind} ({parsed})"
    assert address_refusal(parsed) == kind


def test_a_name_with_one_inner_address_among_public_ones_is_refused(
    certificate: Certificate, public: Listener
) -> None:
    # The connection might go to any of them: all must be allowed.
    fetch = outbound(certificate, mixed_example_test=f"{STAND_IN},10.0.0.5")

    with pytest.raises(OutboundError, match="private address"):
        get(fetch, public.url("/jwks.json", "mixed.example.test"))

    assert public.connections == 0


def test_public_addresses_are_allowed() -> None:
    for text in ("93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"):
        assert address_refusal(ipaddress.ip_address(text)) is None


def test_the_exact_loopback_uri_is_fetched_in_development(
    certificate: Certificate, internal_http: Listener
) -> None:
    fetched = get(outbound(certificate, development=True), internal_http.url("/jwks.json"))

    assert fetched.status == 200


def test_a_loopback_uri_is_refused_outside_development(
    certificate: Certificate, internal_http: Listener
) -> None:
    with pytest.raises(OutboundError) as plain:
        get(outbound(certificate), internal_http.url("/jwks.json"))
    with pytest.raises(OutboundError) as secure:
        get(outbound(certificate), f"https://127.0.0.1:{internal_http.port}/jwks.json")

    assert plain.value.reason == "the URL's host 127.0.0.1 is a loopback address (127.0.0.1)"
    assert secure.value.reason == "the URL's host 127.0.0.1 is a loopback address (127.0.0.1)"

    assert internal_http.connections == 0


def test_a_redirect_to_plain_http_is_refused(certificate: Certificate, public: Listener) -> None:
    public.routes["/jwks.json"] = redirect_to(f"http://{PUBLIC_NAME}:{public.port}/other")

    with pytest.raises(OutboundError, match="a redirect to a non-https URL"):
        get(outbound(certificate), public.url("/jwks.json", PUBLIC_NAME))


def test_redirects_are_followed_to_public_hosts_up_to_the_limit(
    certificate: Certificate, public: Listener
) -> None:
    for hop in range(4):
        public.routes[f"/{hop}"] = redirect_to(f"/{hop + 1}")
    public.routes["/4"] = ok()
    fetch = outbound(certificate)

    assert get(fetch, public.url("/1", PUBLIC_NAME)).status == 200
    with pytest.raises(OutboundError, match="more than 3 redirects"):
        get(fetch, public.url("/0", PUBLIC_NAME))


def test_a_post_is_not_redirected(certificate: Certificate, public: Listener) -> None:
    public.routes["/logout"] = redirect_to(public.url("/elsewhere", PUBLIC_NAME))

    answered = outbound(certificate).post_form(
        public.url("/logout", PUBLIC_NAME), {"logout_token": "t"}, deadline=5.0
    )

    assert answered.status == 302
    assert [seen.path for seen in public.seen] == ["/logout"]


def test_a_certificate_for_another_name_is_refused(
    certificate: Certificate, public: Listener
) -> None:
    fetch = outbound(certificate, other_example_test=str(STAND_IN))

    with pytest.raises(OutboundError, match="TLS certificate refused"):
        get(fetch, public.url("/jwks.json", "other.example.test"))


# --- Size and time. ---


def test_an_answer_over_the_size_cap_is_refused(certificate: Certificate, public: Listener) -> None:
    public.routes["/declared"] = ok(b"x" * 5000)

    def undeclared(handler: BaseHTTPRequestHandler) -> None:
        # No Content-Length: the body ends when the connection closes.
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        for _ in range(100):
            handler.wfile.write(b"y" * 1000)

    public.routes["/undeclared"] = undeclared
    fetch = outbound(certificate)

    for path in ("/declared", "/undeclared"):
        with pytest.raises(OutboundError) as refused:
            get(fetch, public.url(path, PUBLIC_NAME), max_bytes=4096)
        assert refused.value.reason == "an answer of more than 4096 bytes"
        assert not refused.value.retryable


def test_one_deadline_covers_every_hop(certificate: Certificate, public: Listener) -> None:
    """Each hop answers well within the deadline; together they do not."""

    def slow_redirect(target: str) -> Route:
        def route(handler: BaseHTTPRequestHandler) -> None:
            time.sleep(0.4)
            answer(handler, 302, b"", Location=target)

        return route

    public.routes["/1"] = slow_redirect("/2")
    public.routes["/2"] = slow_redirect("/3")
    public.routes["/3"] = slow_redirect("/4")
    public.routes["/4"] = ok()

    with pytest.raises(OutboundError) as late:
        get(outbound(certificate), public.url("/1", PUBLIC_NAME), deadline=1.0)

    assert late.value.reason == "took longer than 1 s"
    assert late.value.retryable
    # Two hops at least were answered in time; the last one never was asked for.
    paths = [seen.path for seen in public.seen]
    assert paths[:2] == ["/1", "/2"]
    assert "/4" not in paths


def test_a_body_sent_a_little_at_a_time_cannot_outlast_the_deadline(
    certificate: Certificate, public: Listener
) -> None:
    """Every read gets a byte soon enough; the fetch as a whole still ends at the deadline."""
    stop = threading.Event()

    def trickle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        for _ in range(1000):
            if stop.wait(0.05):
                return
            handler.wfile.write(b"x")
            handler.wfile.flush()

    public.routes["/slow"] = trickle

    try:
        with pytest.raises(OutboundError) as late:
            get(outbound(certificate), public.url("/slow", PUBLIC_NAME), deadline=0.5, hops=0)
    finally:
        stop.set()

    assert late.value.reason == "took longer than 0.5 s"


def test_logs_show_where_without_the_query_or_user_info() -> None:
    url = "https://rp:secret@rp.example.com:8443/logout?token=abc#x"

    assert for_log(url) == "https://rp.example.com:8443/logout"
