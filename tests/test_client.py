"""The Python API client (oidc_link.client) against a live provider over real HTTP: every
method, every error type, idempotency, retries through a misbehaving proxy, and secrecy."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from oidc_link.client import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    IdempotencyError,
    InvalidRequestError,
    OidcLinkClient,
    OidcLinkError,
    RateLimitError,
)
from oidc_link.client.transport import encode_form
from oidc_link.clock import FixedClock, SystemClock
from oidc_link.ids import digest
from oidc_link.platform.idempotency import Idempotency, fingerprint
from oidc_link.store import Store
from tests.faulty_proxy import Answer, Drop, FaultyProxy, start_faulty_proxy
from tests.live_server import LiveServer, start_live_server

PLATFORM_KEY = "sk_test_platform_Zq8vN3bT6yR1wK4mP7xC2hJ"
OTHER_KEY = "sk_test_other_Lr5sD9fG2hJ6kL0zX3cV8bN1"
REFRESH = "https://platform.example.test/onboarding/refresh"
RETURN = "https://platform.example.test/onboarding/done"
# Matches api.REQUESTS_PER_SECOND: one more than this in a second is refused with 429.
REQUESTS_PER_SECOND = 100


def registration(client_id: str, key: str) -> dict[str, object]:
    return {
        "client_id": client_id,
        "client_secret": f"{client_id}-secret-0123456789abcdef",
        "redirect_uris": [f"https://{client_id}.example.test/callback"],
        "api_keys": [digest(key)],
    }


@pytest.fixture
def provider(redis_client: redis.Redis) -> Iterator[LiveServer]:
    server = start_live_server(
        redis_client, [registration("platform", PLATFORM_KEY), registration("other", OTHER_KEY)]
    )
    yield server
    server.stop()


@pytest.fixture
def proxy(provider: LiveServer) -> Iterator[FaultyProxy]:
    started = start_faulty_proxy(provider.url)
    yield started
    started.stop()


@pytest.fixture
def client(provider: LiveServer) -> OidcLinkClient:
    return OidcLinkClient(PLATFORM_KEY, base_url=provider.url)


def through(proxy: FaultyProxy, **options: float) -> OidcLinkClient:
    return OidcLinkClient(PLATFORM_KEY, base_url=proxy.url, **options)  # type: ignore[arg-type]


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- Every method's happy path ---


def test_an_account_is_created_and_read_by_attribute_or_by_key(client: OidcLinkClient) -> None:
    account = client.accounts.create(
        type="express", email="jenny@example.com", metadata={"order": "6735", "note": "a&b=c d"}
    )

    assert account.id.startswith("acct_")
    assert account["id"] == account.id
    assert account.object == "account"
    assert account["email"] == "jenny@example.com"
    assert account.type == "express"
    assert account.details_submitted is False
    assert account.metadata == {"order": "6735", "note": "a&b=c d"}
    assert account.metadata.order == "6735"
    assert isinstance(account.created, int)
    assert account.last_response is not None
    assert account.last_response.http_status == 200
    assert account.last_response.request_id.startswith("req_")
    assert account.last_response.idempotent_replayed is False
    with pytest.raises(AttributeError):
        _ = account.no_such_field
    assert json.loads(json.dumps(account)) == account


def test_an_account_is_retrieved_listed_and_deleted(client: OidcLinkClient) -> None:
    created = client.accounts.create(type="custom")

    retrieved = client.accounts.retrieve(created.id)
    listed = client.accounts.list(limit=3)
    deleted = client.accounts.delete(created.id)

    assert retrieved == created
    assert listed.object == "list"
    assert listed.url == "/v1/accounts"
    assert listed.has_more is False
    assert [account.id for account in listed] == [created.id]
    assert listed.data[0].type == "custom"
    assert deleted == {"id": created.id, "object": "account", "deleted": True}
    assert deleted.deleted is True
    with pytest.raises(InvalidRequestError):
        client.accounts.retrieve(created.id)


def test_auto_paging_iter_walks_every_page_in_order(proxy: FaultyProxy) -> None:
    client = through(proxy)
    created = {client.accounts.create(type="express").id for _ in range(5)}
    proxy.passages.clear()

    first_page = client.accounts.list(limit=2)
    walked = [account.id for account in first_page.auto_paging_iter()]

    assert len(first_page) == 2
    assert first_page.has_more is True
    assert sorted(walked) == sorted(created)
    assert walked == [account.id for account in client.accounts.list(limit=100)]
    # Pages of 2, 2 and 1: the first page's request, then two more with starting_after.
    pages = [p.path for p in proxy.passages[:-1]]
    assert pages[0] == "/v1/accounts?limit=2"
    assert pages[1:] == [
        f"/v1/accounts?limit=2&starting_after={walked[1]}",
        f"/v1/accounts?limit=2&starting_after={walked[3]}",
    ]


def test_auto_paging_iter_from_ending_before_walks_back_to_the_newest(proxy: FaultyProxy) -> None:
    client = through(proxy)
    for _ in range(5):
        client.accounts.create(type="express")
    # The list's own order (accounts created within one second tie on time).
    newest_first = [account.id for account in client.accounts.list(limit=100)]
    oldest = newest_first[-1]
    proxy.passages.clear()

    page = client.accounts.list(limit=2, ending_before=oldest)
    walked = [account.id for account in page.auto_paging_iter()]

    # Newest first in each page: the two just newer than the oldest.
    assert [account.id for account in page] == newest_first[2:4]
    assert page.has_more is True
    # Walked as Stripe's SDKs walk back: nearest first, the newest last.
    assert walked == list(reversed(newest_first[:4]))
    assert [p.path for p in proxy.passages] == [
        f"/v1/accounts?limit=2&ending_before={oldest}",
        f"/v1/accounts?limit=2&ending_before={newest_first[2]}",
    ]


def test_an_account_is_updated_with_merged_metadata_and_a_new_email(
    client: OidcLinkClient,
) -> None:
    account = client.accounts.create(type="custom", metadata={"plan": "gold", "team": "red"})

    changed = client.accounts.update(
        account.id, email="jenny@example.com", metadata={"team": "", "seat": "4"}
    )
    cleared = client.accounts.update(account.id, metadata="")

    assert changed.email == "jenny@example.com"
    assert changed.metadata == {"plan": "gold", "seat": "4"}
    assert changed.last_response is not None and changed.last_response.http_status == 200
    assert cleared.metadata == {}
    assert client.accounts.retrieve(account.id) == cleared


def test_an_update_replays_with_its_idempotency_key(client: OidcLinkClient) -> None:
    account = client.accounts.create(type="custom")

    first = client.accounts.update(account.id, metadata={"n": "1"}, idempotency_key="n1")
    client.accounts.update(account.id, metadata={"n": "2"})
    replay = client.accounts.update(account.id, metadata={"n": "1"}, idempotency_key="n1")

    assert replay == first
    assert replay.last_response is not None and replay.last_response.idempotent_replayed
    assert client.accounts.retrieve(account.id).metadata == {"n": "2"}


def test_updating_another_platforms_account_raises_invalid_request_error_404(
    client: OidcLinkClient, provider: LiveServer
) -> None:
    theirs = OidcLinkClient(OTHER_KEY, base_url=provider.url).accounts.create(type="custom")

    with pytest.raises(InvalidRequestError) as raised:
        client.accounts.update(theirs.id, metadata={"a": "b"})

    assert raised.value.http_status == 404
    assert raised.value.code == "resource_missing"


def test_an_empty_list_pages_through_nothing(client: OidcLinkClient) -> None:
    page = client.accounts.list()

    assert list(page.auto_paging_iter()) == []
    assert page.has_more is False


def test_an_onboarding_account_link_is_minted_for_an_account(
    client: OidcLinkClient, provider: LiveServer
) -> None:
    account = client.accounts.create(type="express")

    account_link = client.account_links.create(
        account=account.id, type="account_onboarding", refresh_url=REFRESH, return_url=RETURN
    )

    assert account_link.object == "account_link"
    assert account_link.url.startswith(provider.url + "/")
    assert account_link.expires_at - account_link.created == 3600
    # Printing or logging the object by accident does not reveal the bearer URL.
    assert account_link.url not in repr(account_link)
    assert account_link.url not in str(account_link)
    assert "redacted" in str(account_link)


def test_an_update_account_link_is_minted_for_an_account(client: OidcLinkClient) -> None:
    account = client.accounts.create(type="custom")

    account_link = client.account_links.create(
        account=account.id, type="account_update", refresh_url=REFRESH, return_url=RETURN
    )

    assert account_link.object == "account_link"
    assert account_link.url != ""


def test_a_login_link_is_minted_for_an_express_account(
    client: OidcLinkClient, provider: LiveServer
) -> None:
    account = client.accounts.create(type="express")

    login = client.login_links.create(account.id)

    assert login.object == "login_link"
    assert login.url.startswith(provider.url + "/")
    assert isinstance(login.created, int)
    assert login.url not in repr(login)


# --- Errors, each with the server's fields and the Request-Id ---


def test_a_wrong_api_key_raises_authentication_error(provider: LiveServer) -> None:
    client = OidcLinkClient("sk_test_not_a_key_we_know", base_url=provider.url)

    with pytest.raises(AuthenticationError) as raised:
        client.accounts.list()

    error = raised.value
    assert error.http_status == 401
    assert error.error_type == "authentication_error"
    assert error.request_id.startswith("req_")
    assert error.message == "Invalid API key provided."
    assert str(error) == f"Request {error.request_id}: Invalid API key provided."
    assert error.headers["WWW-Authenticate"].startswith("Bearer")
    for shown in (str(error), repr(error), repr(client)):
        assert "sk_test_not_a_key_we_know" not in shown


def test_an_unknown_account_raises_invalid_request_error_404(client: OidcLinkClient) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        client.accounts.retrieve("acct_nosuchaccount")

    error = raised.value
    assert error.http_status == 404
    assert error.error_type == "invalid_request_error"
    assert error.code == "resource_missing"
    assert error.param == "account"
    assert error.request_id.startswith("req_")
    assert "acct_nosuchaccount" in error.message


def test_another_platforms_account_is_not_found(
    client: OidcLinkClient, provider: LiveServer
) -> None:
    theirs = OidcLinkClient(OTHER_KEY, base_url=provider.url).accounts.create(type="express")

    with pytest.raises(InvalidRequestError) as raised:
        client.accounts.retrieve(theirs.id)

    assert raised.value.http_status == 404


def test_a_bad_parameter_raises_invalid_request_error_naming_it(client: OidcLinkClient) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        client.accounts.create(type="platinum")  # type: ignore[arg-type]

    assert raised.value.http_status == 400
    assert raised.value.param == "type"
    assert raised.value.request_id.startswith("req_")


def test_a_path_in_an_account_id_cannot_reach_another_endpoint(client: OidcLinkClient) -> None:
    account = client.accounts.create(type="express")

    with pytest.raises(InvalidRequestError) as raised:
        client.accounts.retrieve(f"../accounts/{account.id}")

    assert raised.value.http_status == 404
    assert client.accounts.retrieve(account.id) == account


def test_a_login_link_for_a_custom_account_raises_invalid_request_error(
    client: OidcLinkClient,
) -> None:
    account = client.accounts.create(type="custom")

    with pytest.raises(InvalidRequestError) as raised:
        client.login_links.create(account.id)

    assert raised.value.http_status == 400
    assert raised.value.error_type == "invalid_request_error"
    assert raised.value.request_id.startswith("req_")


def test_an_account_link_with_a_missing_account_raises_invalid_request_error(
    client: OidcLinkClient,
) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        client.account_links.create(
            account="acct_nosuchaccount",
            type="account_onboarding",
            refresh_url=REFRESH,
            return_url=RETURN,
        )

    assert raised.value.http_status == 404
    assert raised.value.param == "account"


def test_too_many_requests_raise_rate_limit_error(
    redis_client: redis.Redis, provider: LiveServer
) -> None:
    # Use up this second's and the next second's allowance for the key, as a burst would.
    now = SystemClock().now()
    for second in (now, now + 1):
        window = Store(redis_client, FixedClock(second))
        for _ in range(REQUESTS_PER_SECOND):
            window.limits.count("api", digest(PLATFORM_KEY), 1)
    client = OidcLinkClient(PLATFORM_KEY, base_url=provider.url, max_network_retries=0)

    with pytest.raises(RateLimitError) as raised:
        client.accounts.list()

    assert raised.value.http_status == 429
    assert raised.value.error_type == "rate_limit_error"
    assert raised.value.code == "rate_limit"
    assert raised.value.headers["Retry-After"] == "1"
    assert raised.value.request_id.startswith("req_")


def test_an_html_error_page_raises_api_error(proxy: FaultyProxy) -> None:
    proxy.faults.append(Answer(502, b"<html><h1>502 Bad Gateway</h1></html>"))

    with pytest.raises(APIError) as raised:
        through(proxy).accounts.list()

    assert raised.value.http_status == 502
    assert raised.value.request_id is None
    assert "502" in raised.value.message


def test_a_redirect_is_not_followed_with_the_api_key(proxy: FaultyProxy) -> None:
    proxy.faults.append(Answer(302, headers={"Location": proxy.url + "/elsewhere"}))

    with pytest.raises(APIError) as raised:
        through(proxy).accounts.list()

    assert raised.value.http_status == 302
    assert [p.path for p in proxy.passages] == ["/v1/accounts"]


def test_nothing_listening_raises_api_connection_error() -> None:
    client = OidcLinkClient(
        PLATFORM_KEY, base_url=f"http://127.0.0.1:{unused_port()}", max_network_retries=1
    )

    started = time.monotonic()
    with pytest.raises(APIConnectionError) as raised:
        client.accounts.create(type="express")

    assert "connection refused" in raised.value.message
    assert raised.value.http_status is None
    assert isinstance(raised.value, OidcLinkError)
    # One retry, after a backoff of at least 3/8 s.
    assert time.monotonic() - started >= 0.375


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections (in the backlog) and never answers
        client = OidcLinkClient(
            PLATFORM_KEY,
            base_url=f"http://127.0.0.1:{silent.getsockname()[1]}",
            timeout=0.3,
            max_network_retries=0,
        )

        with pytest.raises(APIConnectionError) as raised:
            client.accounts.list()

    assert "timed out" in raised.value.message


# --- Idempotency ---


def test_the_same_idempotency_key_replays_the_first_account(client: OidcLinkClient) -> None:
    first = client.accounts.create(type="express", email="sam@example.com", idempotency_key="k-1")
    again = client.accounts.create(type="express", email="sam@example.com", idempotency_key="k-1")

    assert again == first
    assert first.last_response.idempotent_replayed is False
    assert again.last_response.idempotent_replayed is True
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert [account.id for account in client.accounts.list()] == [first.id]


def test_the_same_idempotency_key_replays_the_first_account_or_login_link(
    client: OidcLinkClient,
) -> None:
    account = client.accounts.create(type="express")
    params = {
        "account": account.id,
        "type": "account_onboarding",
        "refresh_url": REFRESH,
        "return_url": RETURN,
    }

    first = client.account_links.create(**params, idempotency_key="account-link-1")  # type: ignore[arg-type]
    again = client.account_links.create(**params, idempotency_key="account-link-1")  # type: ignore[arg-type]
    login = client.login_links.create(account.id, idempotency_key="login-1")
    login_again = client.login_links.create(account.id, idempotency_key="login-1")

    assert again.url == first.url
    assert again.last_response.idempotent_replayed is True
    assert login_again.url == login.url
    assert login_again.last_response.idempotent_replayed is True


def test_an_idempotency_key_reused_with_other_parameters_raises_idempotency_error(
    client: OidcLinkClient,
) -> None:
    client.accounts.create(type="express", idempotency_key="k-2")

    with pytest.raises(IdempotencyError) as raised:
        client.accounts.create(type="custom", idempotency_key="k-2")

    assert raised.value.http_status == 400
    assert raised.value.error_type == "idempotency_error"
    assert raised.value.code == "idempotency_key_reused"
    assert raised.value.request_id.startswith("req_")


def test_an_empty_idempotency_key_is_refused_rather_than_replaced(
    client: OidcLinkClient,
) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        client.accounts.create(type="express", idempotency_key="")

    assert raised.value.http_status == 400
    assert "Idempotency-Key" in raised.value.message
    assert len(client.accounts.list()) == 0


def hold_key_in_flight(redis_client: redis.Redis, key: str) -> tuple[Idempotency, object]:
    """Another request with this key (and the same parameters) is running right now."""
    idempotency = Idempotency(Store(redis_client, SystemClock()))
    request = fingerprint("POST", "/v1/accounts", {"type": "express"})
    started = idempotency.begin(digest(PLATFORM_KEY), key, request, PLATFORM_KEY)
    return idempotency, started


def test_a_key_still_in_flight_raises_idempotency_error_409(
    redis_client: redis.Redis, provider: LiveServer
) -> None:
    hold_key_in_flight(redis_client, "k-busy")
    client = OidcLinkClient(PLATFORM_KEY, base_url=provider.url, max_network_retries=0)

    with pytest.raises(IdempotencyError) as raised:
        client.accounts.create(type="express", idempotency_key="k-busy")

    assert raised.value.http_status == 409
    assert raised.value.code == "idempotency_key_in_use"
    assert raised.value.request_id.startswith("req_")


def test_a_create_waits_out_a_key_in_flight_by_retrying(
    redis_client: redis.Redis, proxy: FaultyProxy
) -> None:
    idempotency, started = hold_key_in_flight(redis_client, "k-later")

    def give_up_the_key_once_refused() -> None:
        """The other request gives the key up (it failed validation) while we back off: once
        our first attempt has been answered 409, not after a fixed time, which a loaded
        machine could pass before our first attempt arrives."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not proxy.passages:
            time.sleep(0.005)
        idempotency.abandon(digest(PLATFORM_KEY), "k-later", started)

    release = threading.Thread(target=give_up_the_key_once_refused)
    release.start()
    try:
        account = through(proxy).accounts.create(type="express", idempotency_key="k-later")
    finally:
        release.join()

    assert account.id.startswith("acct_")
    assert [p.upstream_status for p in proxy.passages] == [409, 200]


# --- Retries only where safe ---


def test_a_create_whose_answer_was_lost_is_retried_and_creates_one_account(
    proxy: FaultyProxy, client: OidcLinkClient
) -> None:
    proxy.faults.append(Drop())

    account = through(proxy).accounts.create(type="express", email="jenny@example.com")

    first, retry = proxy.passages
    # The provider created the account the first time; the retry carried the same
    # generated key, so it was answered with the first response instead of a second account.
    assert first.upstream_status == retry.upstream_status == 200
    assert first.idempotency_key is not None
    assert retry.idempotency_key == first.idempotency_key
    assert account.last_response.idempotent_replayed is True
    assert [listed.id for listed in client.accounts.list()] == [account.id]


def test_each_create_gets_its_own_generated_idempotency_key(proxy: FaultyProxy) -> None:
    client = through(proxy)

    client.accounts.create(type="express")
    client.accounts.create(type="express")

    keys = [p.idempotency_key for p in proxy.passages]
    assert len(set(keys)) == 2
    assert None not in keys


def test_a_lost_answer_without_retries_raises_api_connection_error(
    proxy: FaultyProxy, client: OidcLinkClient
) -> None:
    proxy.faults.append(Drop())

    with pytest.raises(APIConnectionError):
        through(proxy, max_network_retries=0).accounts.create(type="express")

    # It did happen: which is why the client retries creates with the same key by default.
    assert len(client.accounts.list()) == 1


def test_a_503_in_front_of_the_provider_is_retried(proxy: FaultyProxy) -> None:
    proxy.faults.append(Answer(503, b"busy", "text/plain", {"Retry-After": "0"}))

    listed = through(proxy).accounts.list()

    assert listed.object == "list"
    assert [(p.fault is None, p.upstream_status) for p in proxy.passages] == [
        (False, None),
        (True, 200),
    ]


def test_a_429_is_retried(proxy: FaultyProxy) -> None:
    body = b'{"error": {"type": "rate_limit_error", "code": "rate_limit", "message": "Slow"}}'
    proxy.faults.append(Answer(429, body, "application/json", {"Retry-After": "0"}))

    account = through(proxy).accounts.create(type="express")

    assert account.object == "account"
    assert len(proxy.passages) == 2


def test_retries_stop_after_max_network_retries(proxy: FaultyProxy) -> None:
    for _ in range(4):
        proxy.faults.append(Answer(503, b"down", "text/plain", {"Retry-After": "0"}))

    with pytest.raises(APIError) as raised:
        through(proxy).accounts.delete("acct_whatever")

    assert raised.value.http_status == 503
    # The call and its 2 retries (the default); the fourth answer was never asked for.
    assert len(proxy.passages) == 3
    assert len(proxy.faults) == 1


def test_a_long_retry_after_is_not_waited_for(proxy: FaultyProxy) -> None:
    proxy.faults.append(Answer(503, b"down", "text/plain", {"Retry-After": "3600"}))

    with pytest.raises(APIError):
        through(proxy).accounts.list()

    assert len(proxy.passages) == 1


def test_an_error_that_a_retry_cannot_fix_is_not_retried(proxy: FaultyProxy) -> None:
    with pytest.raises(InvalidRequestError):
        through(proxy).accounts.create(type="platinum")  # type: ignore[arg-type]

    assert len(proxy.passages) == 1


# --- Encoding, configuration and secrecy ---


def test_parameters_are_form_encoded_the_stripe_way() -> None:
    encoded = encode_form(
        {"type": "express", "email": None, "metadata": {"order": "6735", "gift": True}}
    )

    assert encoded == "type=express&metadata%5Border%5D=6735&metadata%5Bgift%5D=true"
    assert encode_form({"items": ["a", "b"]}) == "items%5B0%5D=a&items%5B1%5D=b"


@pytest.mark.parametrize(
    "base_url", ["login.example.com", "ftp://login.example.com", "https://", "https://a/?x=1"]
)
def test_a_base_url_that_is_not_an_http_origin_is_refused(base_url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        OidcLinkClient(PLATFORM_KEY, base_url=base_url)


@pytest.mark.parametrize("api_key", ["", "  ", "sk_test\r\nX-Injected: 1", "sk test"])
def test_an_api_key_that_cannot_be_a_header_value_is_refused(api_key: str) -> None:
    with pytest.raises(ValueError, match="api_key"):
        OidcLinkClient(api_key, base_url="https://login.example.com")


def test_the_client_logs_neither_the_api_key_nor_account_or_login_link_urls(
    proxy: FaultyProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = through(proxy)
    account = client.accounts.create(type="express")
    proxy.faults.append(Drop())
    onboarding = client.account_links.create(
        account=account.id, type="account_onboarding", refresh_url=REFRESH, return_url=RETURN
    )
    proxy.faults.append(Drop())
    login = client.login_links.create(account.id)

    logged = [r for r in caplog.records if r.name == "oidc_link.client"]
    text = "\n".join(record.getMessage() for record in caplog.records)
    # It did log: each call, and each of the two retries.
    assert len(logged) >= 5
    assert sum("retry 1 of 2" in record.getMessage() for record in logged) == 2
    for secret in (PLATFORM_KEY, onboarding.url, login.url):
        assert secret not in text
