"""Record.to_record writes the bytes dataclasses.asdict + json.dumps wrote before issue 16:
the stored layout must not move when the encoding got cheaper.

Every Record subclass (found by walking the class tree, so a new one fails here until it has
an example) is written in several shapes: every field set, including non-ASCII text, nested
records, dicts and tuples; only the required fields; and each field that is left out while
empty both empty and set. A nested record leaves out its own empty fields too (Identity's
``city``, issue 19: added after records holding identities shipped).
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields, replace
from typing import Any

import pytest

from oidc_link.models import (
    AccessToken,
    AccountLinkTarget,
    AuthorizationCode,
    FinishedFlow,
    Flow,
    FlowStep,
    Identity,
    PendingLogout,
    PushedRequest,
    Record,
    RefreshToken,
    SigningKey,
    SsoSession,
)
from oidc_link.platform.account_links import AccountLinkGrant, AccountLinkPublic
from oidc_link.platform.account_sessions import AccountSession

IDENTITY = Identity(email="zoë@example.test", name="Zoë \"Z\" Ünal\n", auth_time=1_765_000_000)
IDENTITY_WITH_CITY = replace(IDENTITY, city="São Paulo")
TARGET = AccountLinkTarget(
    kind="account_onboarding",
    account_id="acct_1",
    owner="ca_owner",
    return_url="https://platform.example.test/back?a=1&b=é",
)
SESSION = SsoSession(
    sid="sid_1",
    identity=IDENTITY,
    created_at=1,
    absolute_expiry=2,
    idle_expiry=3,
    device="Firefox on Linux",
    left_sectors=("shop", "partner.example.test"),
)

# Each record type's examples: every field set, then only what it requires.
EXAMPLES: dict[type[Record], list[Record]] = {
    Identity: [
        IDENTITY,
        IDENTITY_WITH_CITY,
        Identity(email="a@example.test", name=None, auth_time=0, amr=()),
    ],
    AccountLinkTarget: [TARGET],
    Flow: [
        Flow(
            id="flow_1",
            browser_digest="d" * 43,
            client_id="shop",
            authorization={"redirect_uri": "https://shop.example.test/cb", "state": "s ✓"},
            csrf_token="c" * 43,
            created_at=10,
            expires_at=20,
            step=FlowStep.CONSENT,
            email="zoë@example.test",
            redacted_phone="•••• 42",
            link_client_secret="lcs_secret",
            code_attempts=2,
            sms_sent=1,
            sms_sent_at=11,
            identity=IDENTITY,
            account_link=TARGET,
            locale="pt-BR",
        ),
        Flow(
            id="flow_2",
            browser_digest="d",
            client_id="shop",
            authorization={},
            csrf_token="c",
            created_at=0,
            expires_at=0,
        ),
    ],
    SsoSession: [
        SESSION,
        replace(SESSION, device=None, left_sectors=()),
        replace(SESSION, left_sectors=("shop",)),
    ],
    PendingLogout: [
        PendingLogout(
            id="lo_1",
            browser_digest="d",
            csrf_token="c",
            expires_at=5,
            client_id="shop",
            post_logout_redirect_uri="https://shop.example.test/bye",
            state="st",
        ),
        PendingLogout(id="lo_2", browser_digest="d", csrf_token="c", expires_at=5),
    ],
    FinishedFlow: [
        FinishedFlow(
            client_id="shop",
            redirect_uri="https://shop.example.test/cb",
            sealed_redirect="sealed",
            redirect_valid_until=9,
            response_mode="form_post",
        ),
        FinishedFlow(
            client_id="shop", redirect_uri=None, sealed_redirect=None, redirect_valid_until=0
        ),
    ],
    AuthorizationCode: [
        AuthorizationCode(
            client_id="shop",
            redirect_uri="https://shop.example.test/cb",
            scope="openid email",
            subject="sub_1",
            identity=IDENTITY,
            expires_at=7,
            nonce="n",
            code_challenge="x" * 43,
            code_challenge_method="S256",
            sid="sid_1",
            claims='{"userinfo":{"email":null}}',
            family_id="fam_1",
        ),
        AuthorizationCode(
            client_id="shop",
            redirect_uri=None,
            scope="openid",
            subject="sub_1",
            identity=IDENTITY,
            expires_at=7,
        ),
    ],
    AccessToken: [
        AccessToken(
            client_id="shop",
            subject="sub_1",
            scope="openid",
            identity=IDENTITY,
            expires_at=8,
            family_id="fam_1",
            issued_at=4,
            sid="sid_1",
            claims="{}",
        ),
        AccessToken(client_id="shop", subject="s", scope="", identity=IDENTITY, expires_at=0),
        AccessToken(
            client_id="shop", subject="s", scope="", identity=IDENTITY_WITH_CITY, expires_at=0
        ),
    ],
    RefreshToken: [
        RefreshToken(
            client_id="shop",
            subject="sub_1",
            scope="openid offline_access",
            identity=IDENTITY,
            family_id="fam_1",
            issued_at=4,
            expires_at=99,
            sid="sid_1",
            claims='{"id_token":{}}',
        ),
        RefreshToken(
            client_id="shop",
            subject="s",
            scope="openid",
            identity=IDENTITY,
            family_id="f",
            issued_at=0,
            expires_at=0,
        ),
    ],
    SigningKey: [
        SigningKey(
            kid="k1",
            alg="RS256",
            slot=0,
            created_at=1,
            signs_from=1,
            sealed_private="sealed",
            public_jwk={"kty": "RSA", "n": "abc", "e": "AQAB"},
        ),
        SigningKey(kid="k2", alg="ES256", slot=5, created_at=1, signs_from=5, sealed_private="s"),
    ],
    PushedRequest: [
        PushedRequest(client_id="shop", parameters={"scope": "openid", "b": "ü"}, expires_at=3),
        PushedRequest(client_id="shop", parameters={}, expires_at=3),
    ],
    AccountLinkGrant: [
        AccountLinkGrant(
            link_id="link_1",
            kind="login",
            owner="ca_owner",
            client_id="shop",
            account_id="acct_1",
            refresh_url="https://platform.example.test/refresh",
            return_url="https://platform.example.test/return",
            created=1,
            expires_at=2,
        ),
        AccountLinkGrant(
            link_id="link_2",
            kind="account_update",
            owner="o",
            client_id="c",
            account_id="a",
            refresh_url=None,
            return_url=None,
            created=0,
            expires_at=0,
        ),
    ],
    AccountLinkPublic: [
        AccountLinkPublic(refresh_url="https://platform.example.test/refresh"),
        AccountLinkPublic(refresh_url=None),
    ],
    AccountSession: [
        AccountSession(
            account_id="acct_1", owner="o", client_id="shop", expires_at=6, csrf_token="c"
        )
    ],
}


def record_types(base: type[Record] = Record) -> set[type[Record]]:
    found: set[type[Record]] = set()
    for subclass in base.__subclasses__():
        found |= {subclass} | record_types(subclass)
    return found


def as_asdict_wrote_it(record: Record) -> str:
    """The encoding before issue 16: dataclasses.asdict, the empty omitted fields dropped
    (a nested record's as well, since issue 19)."""
    data = asdict(record)  # type: ignore[call-overload]
    drop_empty_omitted(record, data)
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def drop_empty_omitted(record: Record, data: dict[str, Any]) -> None:
    for name in record.omitted_when_empty:
        if not data[name]:
            del data[name]
    for item in fields(record):  # type: ignore[arg-type]
        value = getattr(record, item.name)
        if isinstance(value, Record):
            drop_empty_omitted(value, data[item.name])


def test_every_record_type_has_examples_here() -> None:
    assert record_types() == set(EXAMPLES)


def test_each_field_left_out_while_empty_has_an_example_empty_and_one_set() -> None:
    for record_type, examples in EXAMPLES.items():
        for name in record_type.omitted_when_empty:
            assert {bool(getattr(example, name)) for example in examples} == {True, False}


@pytest.mark.parametrize(
    "record",
    [record for examples in EXAMPLES.values() for record in examples],
    ids=lambda record: type(record).__name__,
)
def test_a_record_is_written_byte_for_byte_as_asdict_wrote_it_and_reads_back_equal(
    record: Record,
) -> None:
    written = record.to_record()

    assert written == as_asdict_wrote_it(record)
    assert type(record).from_record(written) == record


def test_an_identity_without_a_city_is_written_nested_as_before_the_city_existed() -> None:
    written = json.loads(EXAMPLES[AccessToken][0].to_record())

    assert set(written["identity"]) == {"email", "name", "auth_time", "amr"}
    assert json.loads(EXAMPLES[AccessToken][2].to_record())["identity"]["city"] == "São Paulo"


def test_an_identity_written_by_a_later_version_with_a_field_this_one_lacks_still_loads() -> None:
    record = json.loads(EXAMPLES[AuthorizationCode][0].to_record())
    record["identity"]["postal_code"] = "01000"

    assert AuthorizationCode.from_record(json.dumps(record)).identity == IDENTITY


def test_a_record_holding_something_json_cannot_write_is_refused_with_a_type_error() -> None:
    odd = replace(IDENTITY, name=object())  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="object is not a record field JSON can hold"):
        odd.to_record()
