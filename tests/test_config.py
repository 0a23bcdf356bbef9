"""Settings from TOML and the environment: valid files, every problem reported at once with its
field, ``${VAR}`` secrets, env overrides, and the client, issuer and sandbox-user rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from oidc_link.config import (
    SANDBOX_SUBJECT_SALT,
    ClientSettings,
    Lifetimes,
    SandboxUser,
    Settings,
    load_settings,
    settings_from_mapping,
)
from oidc_link.errors import ConfigError
from oidc_link.ids import digest

SECRET = "s3cret-value-long-enough"

VALID = f"""
issuer = "https://login.example.com"
redis_url = "redis://redis.internal:6379/0"

[lifetimes]
flow = 300
code = 30

[link]
mode = "sandbox"

[[link.sandbox.users]]
email = "Jenny@Example.com"
phone = "+14155550123"
name = "Jenny Rosen"

[[link.sandbox.users]]
email = "sam@example.com"
phone = "+447700900123"

[[clients]]
client_id = "shop"
client_secret = "{SECRET}"
redirect_uris = ["https://shop.example.com/auth/callback"]
token_endpoint_auth_method = "client_secret_post"
name = "Example Shop"
scopes = ["openid", "email"]

[[clients]]
client_id = "spa"
token_endpoint_auth_method = "none"
redirect_uris = ["http://localhost:3000/callback", "http://127.0.0.1:8080/cb", "http://[::1]/cb"]
"""


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "oidc-link.toml"
    path.write_text(text, encoding="utf-8")
    return path


def client_toml(**fields: str | list[str]) -> str:
    """One ``[[clients]]`` table; values are written as TOML strings or arrays of strings."""
    lines = ["[[clients]]"]
    for key, value in fields.items():
        if isinstance(value, list):
            items = ", ".join(f'"{item}"' for item in value)
            lines.append(f"{key} = [{items}]")
        else:
            lines.append(f'{key} = "{value}"')
    return "\n".join(lines) + "\n"


def minimal(*, issuer: str = "https://login.example.com", clients: str | None = None) -> str:
    default_client = client_toml(
        client_id="shop", client_secret=SECRET, redirect_uris=["https://shop.example.com/cb"]
    )
    return f'issuer = "{issuer}"\n\n' + (default_client if clients is None else clients)


def config_problems(
    tmp_path: Path, text: str, environ: dict[str, str] | None = None
) -> dict[str, list[str]]:
    """Load ``text`` expecting a ConfigError; return its problems as field -> messages."""
    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path, text), environ or {})
    problems: dict[str, list[str]] = {}
    for problem in caught.value.problems:
        problems.setdefault(problem.field, []).append(problem.message)
    return problems


# A valid file


def test_a_valid_file_loads_into_frozen_settings(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, VALID), {})

    assert isinstance(settings, Settings)
    assert settings.issuer == "https://login.example.com"
    assert settings.redis_url == "redis://redis.internal:6379/0"
    assert settings.is_sandbox
    assert settings.lifetimes == Lifetimes(flow=300, code=30)
    assert settings.subject_salt == SANDBOX_SUBJECT_SALT
    assert settings.link.sandbox_users == (
        SandboxUser(email="jenny@example.com", phone="+14155550123", name="Jenny Rosen"),
        SandboxUser(email="sam@example.com", phone="+447700900123", name=None),
    )
    shop = settings.client("shop")
    assert shop == ClientSettings(
        client_id="shop",
        redirect_uris=("https://shop.example.com/auth/callback",),
        token_endpoint_auth_method="client_secret_post",
        client_secret=SECRET,
        name="Example Shop",
        scopes=("openid", "email"),
    )
    assert not shop.is_public
    spa = settings.client("spa")
    assert spa is not None
    assert spa.is_public
    assert spa.client_secret is None
    assert spa.display_name == "spa"
    assert spa.scopes == ("openid", "email", "profile", "address", "offline_access")
    assert settings.client("nobody") is None
    with pytest.raises(AttributeError):
        settings.issuer = "https://elsewhere.example.com"  # type: ignore[misc]


def test_a_minimal_file_gets_defaults(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, minimal()), {})

    assert settings.redis_url is None
    assert settings.lifetimes == Lifetimes()
    assert settings.link.mode == "sandbox"
    assert settings.link.sandbox_users == ()
    only = settings.clients[0]
    assert only.token_endpoint_auth_method == "client_secret_basic"
    assert only.display_name == "shop"
    assert only.require_pkce


def test_the_path_may_be_a_string(tmp_path: Path) -> None:
    settings = load_settings(str(write_config(tmp_path, minimal())), {})

    assert settings.issuer == "https://login.example.com"


# Every problem at once


def test_a_config_with_several_mistakes_reports_each_field_at_once(tmp_path: Path) -> None:
    text = """
issuer = "http://login.example.com/"
redis_url = "http://redis.internal"

[lifetimes]
flow = -1
code = "soon"

[link]
mode = "carrier-pigeon"

[[link.sandbox.users]]
email = "not-an-email"
phone = "4155550123"

[[clients]]
client_id = "shop"
redirect_uris = ["http://shop.example.com/cb"]
scopes = ["email"]
"""
    with pytest.raises(ConfigError) as caught:
        load_settings(write_config(tmp_path, text), {})

    fields = {problem.field for problem in caught.value.problems}
    assert fields == {
        "issuer",
        "redis_url",
        "lifetimes.flow",
        "lifetimes.code",
        "link.mode",
        "subject_salt",  # required outside sandbox mode, and the mode is not "sandbox"
        "keys.encryption_key",  # required outside sandbox mode too
        "link.sandbox.users[0].email",
        "link.sandbox.users[0].phone",
        "clients[0].client_secret",
        "clients[0].redirect_uris",
        "clients[0].scopes",
    }
    message = str(caught.value)
    assert message.startswith(f"{len(caught.value.problems)} problem(s) in ")
    assert str(tmp_path / "oidc-link.toml") in message
    assert caught.value.source == str(tmp_path / "oidc-link.toml")


def test_an_empty_file_names_the_missing_issuer_and_clients(tmp_path: Path) -> None:
    problems = config_problems(tmp_path, "")

    assert problems == {
        "issuer": ["is required"],
        "clients": ["at least one [[clients]] entry is required"],
    }


def test_wrong_types_are_problems_not_exceptions(tmp_path: Path) -> None:
    text = """
issuer = 42
link = "sandbox"
lifetimes = 5
clients = "shop"
"""
    problems = config_problems(tmp_path, text)

    assert problems["issuer"] == ["must be a string"]
    assert problems["link"] == ["must be a table"]
    assert problems["lifetimes"] == ["must be a table"]
    assert problems["clients"] == ["must be an array of tables ([[clients]])"]


# ${VAR} references


def test_variable_references_resolve_from_the_environ_mapping(tmp_path: Path) -> None:
    text = minimal(
        clients=client_toml(
            client_id="shop",
            client_secret="${SHOP_SECRET}",
            redirect_uris=["https://${SHOP_HOST}/cb"],
        )
    )
    environ = {"SHOP_SECRET": SECRET, "SHOP_HOST": "shop.example.com"}

    settings = load_settings(write_config(tmp_path, text), environ)

    shop = settings.client("shop")
    assert shop is not None
    assert shop.client_secret == SECRET
    assert shop.redirect_uris == ("https://shop.example.com/cb",)


def test_an_unset_variable_is_a_problem_naming_the_field_and_the_variable(
    tmp_path: Path,
) -> None:
    text = minimal(
        clients=client_toml(
            client_id="shop",
            client_secret="${SHOP_SECRET}",
            redirect_uris=["https://shop.example.com/cb"],
        )
    )

    problems = config_problems(tmp_path, text, {"UNRELATED": "x"})

    assert problems == {
        "clients[0].client_secret": ["refers to unset environment variable SHOP_SECRET"]
    }


def test_a_variable_set_to_a_short_value_is_still_checked(tmp_path: Path) -> None:
    text = minimal(
        clients=client_toml(
            client_id="shop",
            client_secret="${SHOP_SECRET}",
            redirect_uris=["https://shop.example.com/cb"],
        )
    )

    problems = config_problems(tmp_path, text, {"SHOP_SECRET": "short"})

    assert problems == {"clients[0].client_secret": ["must be at least 16 characters"]}


# Environment overrides and OIDC_LINK_CONFIG


def test_environment_overrides_win_over_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, VALID)
    environ = {
        "OIDC_LINK_ISSUER": "https://sso.example.org",
        "REDIS_URL": "redis://cache.example.org:6380/2",
    }

    settings = load_settings(path, environ)

    assert settings.issuer == "https://sso.example.org"
    assert settings.redis_url == "redis://cache.example.org:6380/2"


def test_an_empty_override_does_not_erase_the_file_value(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, VALID), {"OIDC_LINK_ISSUER": ""})

    assert settings.issuer == "https://login.example.com"


def test_an_overridden_value_is_validated_like_the_file(tmp_path: Path) -> None:
    problems = config_problems(
        tmp_path, minimal(), {"OIDC_LINK_ISSUER": "http://sso.example.org", "REDIS_URL": "x"}
    )

    assert set(problems) == {"issuer", "redis_url"}


def test_oidc_link_config_names_the_file_when_no_path_is_given(tmp_path: Path) -> None:
    path = write_config(tmp_path, VALID)

    settings = load_settings(None, {"OIDC_LINK_CONFIG": str(path)})

    assert settings.issuer == "https://login.example.com"


def test_an_explicit_path_wins_over_oidc_link_config(tmp_path: Path) -> None:
    explicit = write_config(tmp_path, minimal(issuer="https://explicit.example.com"))

    settings = load_settings(explicit, {"OIDC_LINK_CONFIG": str(tmp_path / "absent.toml")})

    assert settings.issuer == "https://explicit.example.com"


def test_no_path_and_no_oidc_link_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {})

    assert [problem.field for problem in caught.value.problems] == ["config"]
    assert "OIDC_LINK_CONFIG" in caught.value.problems[0].message


# Unknown keys


def test_unknown_keys_are_reported_at_every_level(tmp_path: Path) -> None:
    text = """
issuer = "https://login.example.com"
isuer = "typo"

[lifetimes]
acess_token = 60

[link]
mdoe = "sandbox"

[link.sandbox]
user = []

[[link.sandbox.users]]
email = "jenny@example.com"
phone = "+14155550123"
nickname = "J"

[[clients]]
client_id = "shop"
client_secret = "s3cret-value-long-enough"
redirect_uris = ["https://shop.example.com/cb"]
redirect_uri = "https://shop.example.com/cb"
"""
    problems = config_problems(tmp_path, text)

    assert problems == {
        "isuer": ["unknown setting"],
        "lifetimes.acess_token": ["unknown setting"],
        "link.mdoe": ["unknown setting"],
        "link.sandbox.user": ["unknown setting"],
        "link.sandbox.users[0].nickname": ["unknown setting"],
        "clients[0].redirect_uri": ["unknown setting"],
    }


# Client rules


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_a_confidential_client_needs_a_secret(tmp_path: Path, method: str) -> None:
    text = minimal(
        clients=client_toml(
            client_id="shop",
            token_endpoint_auth_method=method,
            redirect_uris=["https://shop.example.com/cb"],
        )
    )

    problems = config_problems(tmp_path, text)

    assert problems == {
        "clients[0].client_secret": [f"is required for {method} (or client_secret_sha256)"]
    }


def test_an_empty_secret_does_not_satisfy_a_confidential_client(tmp_path: Path) -> None:
    text = minimal(
        clients=client_toml(
            client_id="shop", client_secret="", redirect_uris=["https://shop.example.com/cb"]
        )
    )

    problems = config_problems(tmp_path, text)

    assert list(problems) == ["clients[0].client_secret"]


def test_a_short_secret_is_rejected(tmp_path: Path) -> None:
    text = minimal(
        clients=client_toml(
            client_id="shop", client_secret="too-short", redirect_uris=["https://a.example/cb"]
        )
    )

    assert config_problems(tmp_path, text) == {
        "clients[0].client_secret": ["must be at least 16 characters"]
    }


def test_a_public_client_must_not_have_a_secret(tmp_path: Path) -> None:
    text = minimal(
        clients=client_toml(
            client_id="spa",
            token_endpoint_auth_method="none",
            client_secret=SECRET,
            redirect_uris=["https://spa.example.com/cb"],
        )
    )

    problems = config_problems(tmp_path, text)

    assert list(problems) == ["clients[0].client_secret"]
    assert "public client" in problems["clients[0].client_secret"][0]


def test_client_secrets_may_be_given_as_two_sha256_hashes(tmp_path: Path) -> None:
    old, new = digest("the-old-secret-of-the-shop"), digest("the-new-secret-of-the-shop")
    text = minimal(
        clients=client_toml(
            client_id="shop",
            client_secret_sha256=[old, new],
            redirect_uris=["https://shop.example.com/cb"],
        )
    )

    shop = load_settings(write_config(tmp_path, text), {}).clients[0]

    assert shop.client_secret is None
    assert shop.client_secret_sha256 == (old, new)
    assert shop.secret_digests == (old, new)


def test_a_plain_secret_counts_among_the_digests_a_client_authenticates_with(
    tmp_path: Path,
) -> None:
    new = digest("the-new-secret-of-the-shop")
    text = minimal(
        clients=client_toml(
            client_id="shop",
            client_secret=SECRET,
            client_secret_sha256=[new],
            redirect_uris=["https://shop.example.com/cb"],
        )
    )

    shop = load_settings(write_config(tmp_path, text), {}).clients[0]

    assert shop.secret_digests == (digest(SECRET), new)


@pytest.mark.parametrize(
    ("secrets", "why"),
    [
        ({"client_secret_sha256": ["ABCDEF" * 10 + "ABCD"]}, "64 lowercase hex characters"),
        ({"client_secret_sha256": [SECRET]}, "64 lowercase hex characters"),
        ({"client_secret_sha256": [digest("a"), digest("a")]}, "the same hash twice"),
        ({"client_secret_sha256": [digest("a"), digest("b"), digest("c")]}, "at most 2"),
        (
            {"client_secret": SECRET, "client_secret_sha256": [digest("a"), digest("b")]},
            "at most 2",
        ),
    ],
)
def test_client_secret_hashes_are_checked_and_named(
    tmp_path: Path, secrets: dict[str, str | list[str]], why: str
) -> None:
    text = minimal(
        clients=client_toml(
            client_id="shop", redirect_uris=["https://shop.example.com/cb"], **secrets
        )
    )

    problems = config_problems(tmp_path, text)

    assert list(problems) == ["clients[0].client_secret_sha256"]
    assert why in problems["clients[0].client_secret_sha256"][0]


def test_a_public_client_must_not_have_secret_hashes(tmp_path: Path) -> None:
    text = minimal(
        clients=client_toml(
            client_id="spa",
            token_endpoint_auth_method="none",
            client_secret_sha256=[digest(SECRET)],
            redirect_uris=["https://spa.example.com/cb"],
        )
    )

    problems = config_problems(tmp_path, text)

    assert list(problems) == ["clients[0].client_secret_sha256"]
    assert "public client" in problems["clients[0].client_secret_sha256"][0]


def test_an_unsupported_auth_method_is_reported(tmp_path: Path) -> None:
    text = minimal(
        clients=client_toml(
            client_id="shop",
            client_secret=SECRET,
            token_endpoint_auth_method="client_secret_jwt",
            redirect_uris=["https://shop.example.com/cb"],
        )
    )

    problems = config_problems(tmp_path, text)

    assert list(problems) == ["clients[0].token_endpoint_auth_method"]


@pytest.mark.parametrize(
    ("uri", "fragment_of_message"),
    [
        ("http://shop.example.com/cb", "must use https"),
        ("http://localhost.example.com/cb", "must use https"),
        ("http://10.0.0.1/cb", "must use https"),
        ("ftp://shop.example.com/cb", "must use https"),
        ("https://shop.example.com/cb#frag", "fragment"),
        ("https://shop.example.com/cb#", "fragment"),
        ("/relative/cb", "absolute URL"),
        ("https:///cb", "absolute URL"),
    ],
)
def test_a_redirect_uri_must_be_https_or_loopback_http_without_fragment(
    tmp_path: Path, uri: str, fragment_of_message: str
) -> None:
    text = minimal(clients=client_toml(client_id="shop", client_secret=SECRET, redirect_uris=[uri]))

    problems = config_problems(tmp_path, text)

    assert list(problems) == ["clients[0].redirect_uris"]
    [message] = problems["clients[0].redirect_uris"]
    assert uri in message
    assert fragment_of_message in message


@pytest.mark.parametrize(
    "uri",
    [
        "https://shop.example.com/cb",
        "https://shop.example.com:8443/cb?tenant=1",
        "http://localhost/cb",
        "http://localhost:5000/cb",
        "http://127.0.0.1:8080/cb",
        "http://127.9.9.9/cb",
        "http://[::1]:8080/cb",
    ],
)
def test_https_and_loopback_http_redirect_uris_are_accepted(tmp_path: Path, uri: str) -> None:
    text = minimal(clients=client_toml(client_id="shop", client_secret=SECRET, redirect_uris=[uri]))

    settings = load_settings(write_config(tmp_path, text), {})

    assert settings.clients[0].redirect_uris == (uri,)


def test_a_client_needs_at_least_one_redirect_uri(tmp_path: Path) -> None:
    text = minimal(clients=client_toml(client_id="shop", client_secret=SECRET, redirect_uris=[]))

    assert config_problems(tmp_path, text) == {
        "clients[0].redirect_uris": ["at least one redirect URI is required"]
    }


def test_client_ids_must_be_unique(tmp_path: Path) -> None:
    clients = client_toml(
        client_id="shop", client_secret=SECRET, redirect_uris=["https://a.example.com/cb"]
    ) + client_toml(
        client_id="shop", client_secret=SECRET, redirect_uris=["https://b.example.com/cb"]
    )

    problems = config_problems(tmp_path, minimal(clients=clients))

    assert problems == {"clients[1].client_id": ["'shop' appears twice"]}


def test_a_client_without_an_id_is_reported(tmp_path: Path) -> None:
    text = minimal(
        clients=client_toml(client_secret=SECRET, redirect_uris=["https://a.example.com/cb"])
    )

    assert config_problems(tmp_path, text) == {"clients[0].client_id": ["is required"]}


def test_scopes_must_include_openid(tmp_path: Path) -> None:
    text = minimal(
        clients=client_toml(
            client_id="shop",
            client_secret=SECRET,
            redirect_uris=["https://shop.example.com/cb"],
            scopes=["email", "profile"],
        )
    )

    assert config_problems(tmp_path, text) == {"clients[0].scopes": ["must include 'openid'"]}


def test_unsupported_scopes_are_reported(tmp_path: Path) -> None:
    text = minimal(
        clients=client_toml(
            client_id="shop",
            client_secret=SECRET,
            redirect_uris=["https://shop.example.com/cb"],
            scopes=["openid", "payments"],
        )
    )

    assert config_problems(tmp_path, text) == {"clients[0].scopes": ["unsupported: payments"]}


# Issuer rules


@pytest.mark.parametrize(
    ("issuer", "fragment_of_message"),
    [
        ("https://login.example.com/", "must not end with '/'"),
        ("https://login.example.com/tenant/", "must not end with '/'"),
        ("http://login.example.com", "must be an https URL"),
        ("login.example.com", "must be an https URL"),
        ("https://login.example.com?x=1", "query or fragment"),
        ("https://login.example.com#top", "query or fragment"),
    ],
)
def test_an_issuer_must_be_https_or_loopback_without_trailing_slash(
    tmp_path: Path, issuer: str, fragment_of_message: str
) -> None:
    problems = config_problems(tmp_path, minimal(issuer=issuer))

    assert list(problems) == ["issuer"]
    assert fragment_of_message in problems["issuer"][0]


@pytest.mark.parametrize(
    "issuer",
    [
        "https://login.example.com",
        "https://login.example.com/tenant",
        "http://localhost:5000",
        "http://127.0.0.1:8000",
    ],
)
def test_https_and_loopback_issuers_are_accepted(tmp_path: Path, issuer: str) -> None:
    settings = load_settings(write_config(tmp_path, minimal(issuer=issuer)), {})

    assert settings.issuer == issuer


# Sandbox users


def sandbox_users(*users: tuple[str, str]) -> str:
    tables = "".join(
        f'[[link.sandbox.users]]\nemail = "{email}"\nphone = "{phone}"\n\n'
        for email, phone in users
    )
    return minimal() + "\n" + tables


@pytest.mark.parametrize("phone", ["4155550123", "+0155550123", "+1 415 555 0123", "+12345"])
def test_a_sandbox_phone_must_be_e164(tmp_path: Path, phone: str) -> None:
    problems = config_problems(tmp_path, sandbox_users(("jenny@example.com", phone)))

    assert list(problems) == ["link.sandbox.users[0].phone"]
    assert "E.164" in problems["link.sandbox.users[0].phone"][0]


@pytest.mark.parametrize("email", ["jenny", "jenny@example", "jenny @example.com", "@example.com"])
def test_a_sandbox_email_must_be_an_email_address(tmp_path: Path, email: str) -> None:
    problems = config_problems(tmp_path, sandbox_users((email, "+14155550123")))

    assert problems == {"link.sandbox.users[0].email": ["is not an email address"]}


def test_a_sandbox_email_may_not_appear_twice_in_any_case(tmp_path: Path) -> None:
    text = sandbox_users(
        ("jenny@example.com", "+14155550123"),
        ("sam@example.com", "+14155550124"),
        ("JENNY@example.com", "+14155550125"),
    )

    assert config_problems(tmp_path, text) == {"link.sandbox.users[2].email": ["appears twice"]}


def test_a_sandbox_user_needs_email_and_phone(tmp_path: Path) -> None:
    text = minimal() + '\n[[link.sandbox.users]]\nname = "Nobody"\n'

    assert config_problems(tmp_path, text) == {
        "link.sandbox.users[0].email": ["is required"],
        "link.sandbox.users[0].phone": ["is required"],
    }


# Files that cannot be read


def test_bad_toml_is_a_config_error(tmp_path: Path) -> None:
    problems = config_problems(tmp_path, 'issuer = "https://login.example.com\n[[clients]\n')

    assert list(problems) == ["config"]
    assert problems["config"][0].startswith("not valid TOML")


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"

    with pytest.raises(ConfigError) as caught:
        load_settings(missing, {})

    assert [str(problem) for problem in caught.value.problems] == ["config: file not found"]
    assert caught.value.source == str(missing)


def test_a_directory_instead_of_a_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, {})

    assert caught.value.problems[0].message.startswith("cannot read")


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('issuer = "https://login.example.com"\nname = "caf\xe9"\n'.encode("latin-1"))

    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})

    assert caught.value.problems[0].field == "config"


def test_an_empty_client_list_is_a_problem() -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping({"issuer": "https://login.example.test", "clients": []}, {})

    assert [p.field for p in raised.value.problems] == ["clients"]


def test_refresh_token_settings_load_with_their_defaults(tmp_path: Path) -> None:
    text = VALID.replace('[[clients]]', '[[clients]]\nrefresh_tokens = true', 1)
    settings = load_settings(write_config(tmp_path, text), {})

    assert settings.clients[0].refresh_tokens is True
    assert settings.clients[1].refresh_tokens is False
    assert settings.lifetimes.refresh_token == 30 * 86_400
    assert settings.lifetimes.refresh_grace == 10


def test_refresh_tokens_must_be_a_boolean(tmp_path: Path) -> None:
    text = VALID.replace('[[clients]]', '[[clients]]\nrefresh_tokens = "yes"', 1)

    problems = config_problems(tmp_path, text)

    assert problems == {"clients[0].refresh_tokens": ["must be true or false"]}


# Client options of the complete provider (issue 5)


def test_client_options_for_logout_consent_par_and_sectors_load(tmp_path: Path) -> None:
    text = minimal(
        clients=client_toml(
            client_id="shop",
            client_secret=SECRET,
            redirect_uris=["https://shop.example.com/cb"],
            post_logout_redirect_uris=["https://shop.example.com/"],
            backchannel_logout_uri="https://shop.example.com/backchannel",
            sector="example-group",
        )
        + "third_party = true\nrequire_pushed_authorization_requests = true\n"
    )

    client = load_settings(write_config(tmp_path, text), {}).clients[0]

    assert client.post_logout_redirect_uris == ("https://shop.example.com/",)
    assert client.backchannel_logout_uri == "https://shop.example.com/backchannel"
    assert client.subject_sector == "example-group"
    assert client.third_party is True
    assert client.require_pushed_authorization_requests is True
    assert client.backchannel_logout_session_required is False


def test_a_client_without_a_sector_is_its_own_sector(tmp_path: Path) -> None:
    client = load_settings(write_config(tmp_path, minimal()), {}).clients[0]

    assert client.subject_sector == "shop"


def test_private_key_jwt_takes_an_inline_jwk_set_and_no_secret(tmp_path: Path) -> None:
    text = minimal(
        clients=client_toml(
            client_id="api",
            token_endpoint_auth_method="private_key_jwt",
            redirect_uris=["https://api.example.com/cb"],
        )
        + '[[clients.jwks.keys]]\nkty = "EC"\ncrv = "P-256"\nx = "AAAA"\ny = "BBBB"\n'
    )

    client = load_settings(write_config(tmp_path, text), {}).clients[0]

    assert client.client_secret is None
    assert client.jwks == {"keys": [{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "BBBB"}]}


def test_private_key_jwt_needs_exactly_one_source_of_keys(tmp_path: Path) -> None:
    neither = minimal(
        clients=client_toml(
            client_id="api",
            token_endpoint_auth_method="private_key_jwt",
            redirect_uris=["https://api.example.com/cb"],
        )
    )
    both = neither + 'jwks_uri = "https://api.example.com/jwks"\n' + (
        '[[clients.jwks.keys]]\nkty = "EC"\n'
    )

    assert "clients[0].jwks" in config_problems(tmp_path, neither)
    assert "clients[0].jwks" in config_problems(tmp_path, both)


def test_client_keys_and_secrets_belong_to_their_own_methods(tmp_path: Path) -> None:
    keys_with_a_secret_method = minimal() + 'jwks_uri = "https://shop.example.com/jwks"\n'
    secret_with_keys = minimal(
        clients=client_toml(
            client_id="api",
            token_endpoint_auth_method="private_key_jwt",
            client_secret=SECRET,
            jwks_uri="https://api.example.com/jwks",
            redirect_uris=["https://api.example.com/cb"],
        )
    )

    assert "clients[0].jwks" in config_problems(tmp_path, keys_with_a_secret_method)
    assert list(config_problems(tmp_path, secret_with_keys)) == ["clients[0].client_secret"]


def test_logout_uris_follow_the_redirect_uri_rules(tmp_path: Path) -> None:
    text = minimal(
        clients=client_toml(
            client_id="shop",
            client_secret=SECRET,
            redirect_uris=["https://shop.example.com/cb"],
            post_logout_redirect_uris=["http://shop.example.com/bye"],
            backchannel_logout_uri="https://shop.example.com/logout#frag",
        )
        + 'third_party = "yes"\n'
    )

    problems = config_problems(tmp_path, text)

    assert set(problems) == {
        "clients[0].post_logout_redirect_uris",
        "clients[0].backchannel_logout_uri",
        "clients[0].third_party",
    }


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_a_confidential_client_may_turn_pkce_off_as_a_legacy_client(
    tmp_path: Path, method: str
) -> None:
    client = client_toml(
        client_id="legacy",
        client_secret=SECRET,
        token_endpoint_auth_method=method,
        redirect_uris=["https://legacy.example.com/cb"],
    )
    text = minimal(clients=client + "require_pkce = false\n")

    settings = load_settings(write_config(tmp_path, text), {})

    assert not settings.clients[0].require_pkce


def test_a_public_client_cannot_turn_pkce_off(tmp_path: Path) -> None:
    client = client_toml(
        client_id="spa",
        token_endpoint_auth_method="none",
        redirect_uris=["https://spa.example.com/cb"],
    )
    text = minimal(clients=client + "require_pkce = false\n")

    problems = config_problems(tmp_path, text)

    assert list(problems) == ["clients[0].require_pkce"]
    assert "public client" in problems["clients[0].require_pkce"][0]


def test_require_pkce_must_be_true_or_false(tmp_path: Path) -> None:
    text = minimal(
        clients=client_toml(
            client_id="shop",
            client_secret=SECRET,
            redirect_uris=["https://shop.example.com/cb"],
            require_pkce="no",
        )
    )

    assert config_problems(tmp_path, text) == {"clients[0].require_pkce": ["must be true or false"]}
