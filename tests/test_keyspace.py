"""The Redis data layout is a promise: an upgraded instance reads what the previous version
wrote. So each kind of key is pinned here as the literal string today's data is stored
under, and the fixed TTLs with it. A change here moves users' data; it needs a migration."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable

import pytest

from oidc_link.store import keyspace

# SHA-256 of "secret-1" and of "jenny@example.com": bearer secrets and emails are stored under
# their hex digests, never as themselves.
SECRET = "f7e7c36e458e80e6b6a2c67d0a9ec09bd718dadd7bfa8d6bf6e7ad526e46c2f7"
EMAIL = "2bb1c62d1d1a1eb20e95be953a9c86c30a50f38d297efa475d636d580ed7f696"
# SHA-256 of "shop\x00jti-1" (client id and assertion jti), of "sms:jenny" (a rate subject),
# of a pushed request_uri and of an Idempotency-Key.
JTI = "e462b9bd9dbeb12d0a84985ed9164f81102c24ed81b1fdf1dfa5c0977a014e66"
RATE_SUBJECT = "821b4d7cb09b4eb03fe763b1aaab9a3db25276da2607f0ebccce656a8da9131c"
REQUEST_URI = "e4d5bc37f8a888b7d8a5faf82a4ad87f0130db2ec3c937750e744063034c4da0"
IDEMPOTENCY_KEY = "d05b61bd4b70e0d9a197ac9360f8c24e4eaed5336d31aafd5e16d829c6576df3"

FAMILY = "oidc-link:v1:family:fam_1"
# The family code "secret-1" opens: "fam_" and 32 hex digits of SHA-256 of "token family",
# a NUL and the code.
CODE_FAMILY = "oidc-link:v1:family:fam_51da156c2f5e4811b4fcd660a62c8fe0"
TAGGED = hashlib.sha256(b"fam_1.secret-1").hexdigest()

LAYOUT: list[tuple[Callable[..., str], tuple[object, ...], str]] = [
    # A sign-in's keys share its id as their hash tag (issue 17: pending ones are lost).
    (keyspace.flow, ("flow_abc",), "oidc-link:v1:flow:{flow_abc}"),
    (keyspace.finished_flow, ("flow_abc",), "oidc-link:v1:flow_done:{flow_abc}"),
    (keyspace.flow_lock, ("flow_abc",), "oidc-link:v1:flow_lock:{flow_abc}"),
    (keyspace.session, ("secret-1",), f"oidc-link:v1:session:{SECRET}"),
    (keyspace.session_of_digest, (SECRET,), f"oidc-link:v1:session:{SECRET}"),
    (keyspace.session_dependents, ("sid_1",), "oidc-link:v1:session_links:sid_1"),
    (keyspace.person_sessions, ("Jenny@Example.com",), f"oidc-link:v1:person_sessions:{EMAIL}"),
    (keyspace.pending_logout, ("lo_1",), "oidc-link:v1:logout:lo_1"),
    # Fixed windows: the window's index is the epoch second divided by the window.
    (
        keyspace.rate_counter,
        ("email", "sms:jenny", 60, 1_700_000_000),
        f"oidc-link:v1:rate:email:{{{RATE_SUBJECT}}}:28333333",
    ),
    # A family's keys share its slot: the family key keeps its name, the others carry that
    # whole name as their hash tag (issue 17; a code pending at the upgrade is looked for
    # under its untagged name too: tests/test_key_layout.py).
    (keyspace.code, ("secret-1",), f"oidc-link:v1:code:{{{CODE_FAMILY}}}{SECRET}"),
    (keyspace.spent_code, ("secret-1",), f"oidc-link:v1:code_spent:{{{CODE_FAMILY}}}{SECRET}"),
    (keyspace.family, ("fam_1",), FAMILY),
    (keyspace.account_families, ("acct_1",), "oidc-link:v1:account_families:acct_1"),
    # Tokens issued before issue 17 name no family: their keys keep the untagged names.
    (keyspace.access_token, ("secret-1",), f"oidc-link:v1:access_token:{SECRET}"),
    (keyspace.refresh_token, ("secret-1",), f"oidc-link:v1:refresh_token:{SECRET}"),
    (keyspace.refresh_used, ("secret-1",), f"oidc-link:v1:refresh_used:{SECRET}"),
    # Tokens that name their family ("<family id>.<secret>") are kept in its slot.
    (
        keyspace.access_token,
        ("fam_1.secret-1",),
        f"oidc-link:v1:access_token:{{{FAMILY}}}{TAGGED}",
    ),
    (
        keyspace.refresh_token,
        ("fam_1.secret-1",),
        f"oidc-link:v1:refresh_token:{{{FAMILY}}}{TAGGED}",
    ),
    (
        keyspace.refresh_used,
        ("fam_1.secret-1",),
        f"oidc-link:v1:refresh_used:{{{FAMILY}}}{TAGGED}",
    ),
    (
        keyspace.pushed_request,
        ("urn:ietf:params:oauth:request_uri:abc",),
        f"oidc-link:v1:pushed:{REQUEST_URI}",
    ),
    (keyspace.assertion_jti, ("shop", "jti-1"), f"oidc-link:v1:assertion_jti:{JTI}"),
    (keyspace.consent, ("shop", "sub_1"), "oidc-link:v1:consent:shop:sub_1"),
    (keyspace.key_ring, ("RS256",), "oidc-link:v1:keys:RS256"),
    (keyspace.account, ("acct_1",), "oidc-link:v1:account:acct_1"),
    (keyspace.accounts_of, ("shop",), "oidc-link:v1:accounts_of:shop"),
    (
        keyspace.account_email,
        ("shop", "Jenny@Example.com"),
        f"oidc-link:v1:account_email:shop:{EMAIL}",
    ),
    (keyspace.account_link, ("link_1",), "oidc-link:v1:link:link_1"),
    (keyspace.account_link_token, ("secret-1",), f"oidc-link:v1:link_token:{SECRET}"),
    (keyspace.account_session, ("secret-1",), f"oidc-link:v1:account_session:{SECRET}"),
    (
        keyspace.idempotency,
        ("key_scope", "idem-1"),
        f"oidc-link:v1:idempotency:key_scope:{IDEMPOTENCY_KEY}",
    ),
    (keyspace.sandbox_session, ("secret-1",), f"oidc-link:v1:sandbox_session:{SECRET}"),
    # The outbox: a stream per aggregate, in its slot (issue 18).
    (
        keyspace.outbox,
        ("oidc-link:v1:session_links:sid_1",),
        "oidc-link:v1:outbox:{oidc-link:v1:session_links:sid_1}",
    ),
    (keyspace.webhook_endpoint, ("we_1",), "oidc-link:v1:webhook_endpoint:we_1"),
    # Events (issue 18): the record by its id, each owner's indexes by created.
    (keyspace.event, ("evt_1",), "oidc-link:v1:event:evt_1"),
    (keyspace.events_of, ("shop",), "oidc-link:v1:events_of:shop"),
    (
        keyspace.events_of_type,
        ("shop", "account.updated"),
        "oidc-link:v1:events_of_type:shop:account.updated",
    ),
    (
        keyspace.outbox_lease,
        ("oidc-link:v1:outbox:{flow_1}",),
        "oidc-link:v1:outbox_lease:{flow_1}",
    ),
]

# keyspace functions that build no key of their own.
NOT_KEYS = {
    keyspace.pattern,
    keyspace.kind_of,
    keyspace.rate_counter_ttl,
    keyspace.token_family,
    keyspace.code_family,
    keyspace.hash_tag,
}


def test_a_token_names_its_family_and_one_from_before_names_none() -> None:
    assert keyspace.token_family("fam_1.secret-1") == "fam_1"
    assert keyspace.token_family("secret-1") is None
    # Only a family id before the mark counts: anything else reads as a token from before.
    assert keyspace.token_family("acct_1.secret-1") is None
    assert keyspace.token_family("fam_}{x.secret-1") is None
    assert keyspace.token_family(".secret-1") is None


@pytest.mark.parametrize(
    ("build", "args", "expected"), LAYOUT, ids=[build.__name__ for build, _, _ in LAYOUT]
)
def test_each_kind_of_key_is_named_exactly_as_the_stored_data_is(
    build: Callable[..., str], args: tuple[object, ...], expected: str
) -> None:
    assert build(*args) == expected


def test_every_key_builder_of_the_keyspace_is_pinned_above() -> None:
    builders = {
        function
        for name, function in inspect.getmembers(keyspace, inspect.isfunction)
        if function.__module__ == keyspace.__name__ and not name.startswith("_")
    }

    assert builders - NOT_KEYS == {build for build, _, _ in LAYOUT}


def test_the_fixed_names_and_ttls_are_today_s() -> None:
    assert keyspace.PREFIX == "oidc-link:v1:"
    assert keyspace.KEY_RINGS == "oidc-link:v1:keyrings"
    assert keyspace.FLOW_AFTERLIFE == 3600
    assert keyspace.rate_counter_ttl(60) == 61
    durable = sorted(keyspace.DURABLE_KINDS)
    assert durable == [
        "account",
        "account_email",
        "accounts_of",
        "keyrings",
        "keys",
        "outbox",
        "outbox_deliveries",
        "outbox_index",
        "outbox_retry",
        "sandbox_key",
        "webhook_endpoint",
        "webhook_events",
    ]
    assert keyspace.SANDBOX_KEY == "oidc-link:v1:sandbox_key"
    assert keyspace.OUTBOX_INDEX == "oidc-link:v1:outbox_index"
    assert keyspace.WEBHOOK_EVENTS == "oidc-link:v1:webhook_events"


def test_scans_and_kinds_read_the_same_layout() -> None:
    assert keyspace.pattern() == "oidc-link:v1:*"
    assert keyspace.pattern("rate") == "oidc-link:v1:rate:*"
    assert keyspace.kind_of("oidc-link:v1:flow_done:{flow_abc}") == "flow_done"


def test_the_compatible_layout_names_codes_and_sign_ins_as_1fcd0cc_did() -> None:
    """``[redis] key_layout = "compatible"``: the names 1fcd0cc reads, for its instances
    serving beside this version during a rolling upgrade (tests/test_rolling_upgrade.py)."""
    assert keyspace.code("secret-1", tagged=False) == f"oidc-link:v1:code:{SECRET}"
    assert keyspace.spent_code("secret-1", tagged=False) == f"oidc-link:v1:code_spent:{SECRET}"
    assert keyspace.flow("flow_abc", tagged=False) == "oidc-link:v1:flow:flow_abc"
    assert keyspace.finished_flow("flow_abc", tagged=False) == "oidc-link:v1:flow_done:flow_abc"
    assert keyspace.flow_lock("flow_abc", tagged=False) == "oidc-link:v1:flow_lock:flow_abc"
