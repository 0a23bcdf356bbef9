"""The ``Oidc-Link-Signature`` scheme end to end: the provider's signer against the SDK's
``Webhook.construct_event``, checked also against an HMAC computed here by hand, with the
edge cases a receiver meets (rotation, tampering, replays, garbled headers)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from oidc_link.client import Event, OidcLinkError, SignatureVerificationError, Webhook
from oidc_link.clock import FixedClock
from oidc_link.webhooks.signature import new_signing_secret, signature_header

SECRET = "whsec_" + "k" * 43
OLD_SECRET = "whsec_" + "o" * 43
NOW = FixedClock().now()
EVENT = {
    "id": "evt_1",
    "object": "event",
    "type": "account.updated",
    "created": NOW,
    "data": {"object": {"id": "acct_1", "object": "account", "email": "jenny@example.com"}},
}
PAYLOAD = json.dumps(EVENT).encode()


def by_hand(secret: str, timestamp: int, payload: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()


def test_the_header_is_a_timestamp_and_the_hmac_of_timestamp_dot_payload() -> None:
    header = signature_header([SECRET], NOW, PAYLOAD)

    assert header == f"t={NOW},v1={by_hand(SECRET, NOW, PAYLOAD)}"


def test_during_a_rotation_both_signatures_are_sent_the_current_first() -> None:
    header = signature_header([SECRET, OLD_SECRET], NOW, PAYLOAD)

    assert header == (
        f"t={NOW},v1={by_hand(SECRET, NOW, PAYLOAD)},v1={by_hand(OLD_SECRET, NOW, PAYLOAD)}"
    )


def test_signing_without_a_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        signature_header([], NOW, PAYLOAD)


def test_a_signed_delivery_verifies_and_parses_into_an_event() -> None:
    event = Webhook.construct_event(
        PAYLOAD, signature_header([SECRET], NOW, PAYLOAD), SECRET, now=NOW
    )

    assert isinstance(event, Event)
    assert event.id == "evt_1"
    assert event.type == "account.updated"
    assert event.data.object.email == "jenny@example.com"


def test_the_payload_may_be_given_as_text() -> None:
    header = signature_header([SECRET], NOW, PAYLOAD)

    assert Webhook.construct_event(PAYLOAD.decode(), header, SECRET, now=NOW).id == "evt_1"


def test_a_receiver_holding_either_secret_accepts_a_rotation_delivery() -> None:
    header = signature_header([SECRET, OLD_SECRET], NOW, PAYLOAD)

    assert Webhook.construct_event(PAYLOAD, header, SECRET, now=NOW).id == "evt_1"
    assert Webhook.construct_event(PAYLOAD, header, OLD_SECRET, now=NOW).id == "evt_1"


def test_the_wrong_secret_is_a_signature_error_carrying_the_header() -> None:
    header = signature_header([SECRET], NOW, PAYLOAD)

    with pytest.raises(SignatureVerificationError, match="No signature in the header") as caught:
        Webhook.construct_event(PAYLOAD, header, new_signing_secret(), now=NOW)
    assert caught.value.header == header
    assert isinstance(caught.value, OidcLinkError)


def test_a_payload_changed_by_one_byte_is_refused() -> None:
    header = signature_header([SECRET], NOW, PAYLOAD)
    tampered = PAYLOAD.replace(b"jenny", b"jennz")

    with pytest.raises(SignatureVerificationError):
        Webhook.construct_event(tampered, header, SECRET, now=NOW)


def test_a_payload_re_encoded_by_the_receiver_is_refused() -> None:
    """Parsing then dumping the JSON changes its bytes: the raw body must be passed."""
    header = signature_header([SECRET], NOW, PAYLOAD)
    re_encoded = json.dumps(json.loads(PAYLOAD), separators=(",", ":")).encode()

    with pytest.raises(SignatureVerificationError):
        Webhook.construct_event(re_encoded, header, SECRET, now=NOW)


def test_a_changed_timestamp_breaks_the_signature() -> None:
    header = signature_header([SECRET], NOW, PAYLOAD).replace(f"t={NOW}", f"t={NOW + 1}")

    with pytest.raises(SignatureVerificationError, match="No signature"):
        Webhook.construct_event(PAYLOAD, header, SECRET, now=NOW)


@pytest.mark.parametrize("age", [300, -300, 0])
def test_a_timestamp_within_the_tolerance_either_way_is_accepted(age: int) -> None:
    header = signature_header([SECRET], NOW - age, PAYLOAD)

    assert Webhook.construct_event(PAYLOAD, header, SECRET, now=NOW).id == "evt_1"


@pytest.mark.parametrize("age", [301, -301, 86_400])
def test_a_timestamp_outside_the_tolerance_is_refused_as_a_replay(age: int) -> None:
    header = signature_header([SECRET], NOW - age, PAYLOAD)

    with pytest.raises(SignatureVerificationError, match="more than the tolerance of 300 s"):
        Webhook.construct_event(PAYLOAD, header, SECRET, now=NOW)


def test_the_tolerance_is_the_callers_and_zero_turns_the_check_off() -> None:
    header = signature_header([SECRET], NOW - 600, PAYLOAD)

    with pytest.raises(SignatureVerificationError, match="tolerance of 60 s"):
        Webhook.construct_event(PAYLOAD, header, SECRET, tolerance=60, now=NOW)
    assert Webhook.construct_event(PAYLOAD, header, SECRET, tolerance=0, now=NOW).id == "evt_1"


def test_without_now_the_machines_clock_is_used() -> None:
    """Signed at this machine's moment: accepted; signed in 2001: refused."""
    fresh = int(time.time())
    assert Webhook.construct_event(PAYLOAD, signature_header([SECRET], fresh, PAYLOAD), SECRET)
    with pytest.raises(SignatureVerificationError, match="tolerance"):
        Webhook.construct_event(PAYLOAD, signature_header([SECRET], 1_000_000_000, PAYLOAD), SECRET)


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (None, "is missing"),
        ("", "is missing"),
        ("garbage", "no valid timestamp"),
        (f"v1={'0' * 64}", "no valid timestamp"),
        (f"t=,v1={'0' * 64}", "no valid timestamp"),
        (f"t=12a,v1={'0' * 64}", "no valid timestamp"),
        (f"t=-5,v1={'0' * 64}", "no valid timestamp"),
        (f"t=1,t=2,v1={'0' * 64}", "no valid timestamp"),
        (f"t={NOW}", "no v1 signature"),
        (f"t={NOW},v0={'0' * 64}", "no v1 signature"),
        (f"t={NOW},v1=" + "a" * 5000, "too long"),
    ],
)
def test_a_missing_or_garbled_header_is_a_signature_error(header: str | None, words: str) -> None:
    with pytest.raises(SignatureVerificationError, match=words) as caught:
        Webhook.construct_event(PAYLOAD, header, SECRET, now=NOW)
    assert caught.value.header == header


def test_other_schemes_and_spaces_are_ignored_like_stripe_does() -> None:
    good = by_hand(SECRET, NOW, PAYLOAD)
    header = f"t={NOW}, v0=abc, v1={'f' * 64}, v1={good}, v9=zzz"

    assert Webhook.construct_event(PAYLOAD, header, SECRET, now=NOW).id == "evt_1"


def test_a_non_ascii_signature_is_a_signature_error_not_a_crash() -> None:
    header = f"t={NOW},v1=\u00e9\u00e9,v1=\udcff"

    with pytest.raises(SignatureVerificationError, match="No signature"):
        Webhook.construct_event(PAYLOAD, header, SECRET, now=NOW)


def test_a_signed_body_that_is_not_a_json_object_is_a_value_error() -> None:
    for body in (b"not json", b"[1, 2]", b"\xff\xfe"):
        header = signature_header([SECRET], NOW, body)
        with pytest.raises(ValueError, match=r"not JSON|not a JSON object"):
            Webhook.construct_event(body, header, SECRET, now=NOW)


def test_an_empty_secret_is_a_value_error_for_the_programmer() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        Webhook.construct_event(PAYLOAD, signature_header([SECRET], NOW, PAYLOAD), "", now=NOW)


def test_a_negative_tolerance_is_a_value_error_for_the_programmer() -> None:
    header = signature_header([SECRET], NOW, PAYLOAD)

    with pytest.raises(ValueError, match="tolerance must be 0"):
        Webhook.construct_event(PAYLOAD, header, SECRET, tolerance=-1, now=NOW)


def test_the_worked_example_in_docs_webhooks_md_holds() -> None:
    """A known answer: the format cannot drift without this test and the docs changing."""
    secret, body = "whsec_docs-example-never-use-this-one", b'{"id": "evt_1"}'
    expected = "t=1800000000,v1=8de1f8f5ef12064e9e8dabb6685087a244d520b82ba476c2dbbf5ebdc1ed3368"

    assert signature_header([secret], 1_800_000_000, body) == expected
    assert by_hand(secret, 1_800_000_000, body) == expected.partition("v1=")[2]
    assert Webhook.construct_event(body, expected, secret, now=1_800_000_000).id == "evt_1"
