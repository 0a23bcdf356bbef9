"""Codes, token families, access and refresh tokens, pushed requests and assertion ids in
Redis, each keyed by its secret's digest; single-use things consumed atomically. Stores and
consumes; the grant and rotation rules are oauth's, but for the checks the token scripts
(token_scripts.py) make on the server so that checking, spending and storing are one step."""

from __future__ import annotations

import binascii
import os
from dataclasses import dataclass
from typing import Any

import redis

from oidc_link.clock import Clock
from oidc_link.ids import new_secret
from oidc_link.models import AccessToken, AuthorizationCode, PushedRequest, RefreshToken
from oidc_link.store import key_pairs, keyspace
from oidc_link.store.base import Aggregate, Outages, Writes
from oidc_link.store.outbox import OutboxEntry, OutboxStore
from oidc_link.store.replicated_spend import spend_on_a_replica
from oidc_link.store.token_scripts import REDEEM_CODE, ROTATE_REFRESH_TOKEN

# The two values of a token family's key (see "Token families" below); the scripts
# (token_scripts.py) spell them too.
FAMILY_LIVE = "live"
FAMILY_REVOKED = "revoked"
# The random part of an access or refresh token (new_secret's default).
TOKEN_SECRET_BYTES = 32
# base64's alphabet to base64url's (RFC 4648 §5).
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _urlsafe(raw: bytes) -> str:
    """``raw`` in base64url without padding, as ``secrets.token_urlsafe`` writes its bytes
    (there through two base64 wrappers)."""
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


@dataclass(frozen=True)
class Redemption:
    """What the code's script decided: ``outcome`` is ``issued`` (then ``record`` is the
    code, ``scope`` the access token's, ``with_refresh`` whether a refresh token was
    stored), or the first check that failed (REDEEM_CODE names them)."""

    outcome: str
    record: AuthorizationCode | None = None
    scope: str = ""
    with_refresh: bool = False


@dataclass(frozen=True)
class Rotation:
    """What the rotation script decided: ``outcome`` is ``rotated`` (then ``record`` is the
    refresh token spent, ``scope`` the new access token's), ``invalid``, ``invalid_scope``,
    or ``reused`` (then ``family_id`` is the family just revoked)."""

    outcome: str
    record: RefreshToken | None = None
    scope: str = ""
    family_id: str | None = None


class TokenStore(Aggregate):
    """``tagged``: new tokens name their family and codes are hash-tagged (keyspace.py);
    False (the ``compatible`` key layout) writes both as 1fcd0cc did, for its instances still
    serving during a rolling upgrade. ``both_code_forms``: a code not found in the form this
    store writes is looked for in the other (one Redis, where instances of the other layout
    may have issued it; never on a cluster, which holds only tagged ones)."""

    def __init__(
        self,
        client: redis.Redis,
        clock: Clock,
        outages: Outages,
        *,
        tagged: bool = True,
        both_code_forms: bool = False,
        wait_for_replica_ms: int = 0,
    ) -> None:
        super().__init__(client, clock, outages)
        self._tagged = tagged
        self._both_code_forms = both_code_forms
        self._redeem_code = client.register_script(REDEEM_CODE)
        self._rotate_refresh_token = client.register_script(ROTATE_REFRESH_TOKEN)
        self._wait_for_replica_ms = wait_for_replica_ms
        self._outbox = OutboxStore(client, clock, outages)

    def new_token(self, family_id: str) -> str:
        """A new access or refresh token of family ``family_id``: it names its family, so
        that its key shares the family's hash slot without a lookup (keyspace.py); in the
        compatible layout a bare secret, as 1fcd0cc issued (its record names the family)."""
        if not self._tagged:
            return new_secret(32)
        return family_id + keyspace.TOKEN_FAMILY_MARK + new_secret(32)

    def new_token_pair(self, family_id: str) -> tuple[str, str]:
        """An access and a refresh token of family ``family_id``, as two ``new_token`` calls
        make them (secrets of 32 random bytes each, base64url without padding, 43
        characters), from one draw of the system's CSPRNG: both grants draw a pair."""
        drawn = os.urandom(2 * TOKEN_SECRET_BYTES)
        first = _urlsafe(drawn[:TOKEN_SECRET_BYTES])
        second = _urlsafe(drawn[TOKEN_SECRET_BYTES:])
        if not self._tagged:
            return first, second
        prefix = family_id + keyspace.TOKEN_FAMILY_MARK
        return prefix + first, prefix + second

    def family_of_token(self, token: str) -> str | None:
        """The family a refresh token belongs to: named in it, or for one issued before
        tokens named it, read from its record (a round trip; None when there is none)."""
        family_id = keyspace.token_family(token)
        if family_id is not None:
            return family_id
        raw = self._redis.get(keyspace.refresh_token(token))
        return RefreshToken.from_record(raw).family_id if raw else None

    # Authorization codes: single use; a lost code only means the RP starts again.

    def save_code(
        self, code: str, record: AuthorizationCode, *, writes: Writes | None = None
    ) -> None:
        self._target(writes).set(
            # The record names the code's family (its own code_family): not digested again.
            key_pairs.code_key(code, record.family_id, tagged=self._tagged),
            record.to_record(),
            ex=self._ttl_until(record.expires_at),
        )

    def redeem_code(
        self,
        code: str,
        *,
        family_id: str,
        remember_for: int,
        client_id: str,
        redirect_uri: str,
        verifier_challenge: str,
        refresh_always: bool,
        registered_scopes: str,
        access_token: str,
        refresh_token: str,
        access_lifetime: int,
        refresh_lifetime: int,
    ) -> Redemption:
        """Spend ``code`` and, if it passes the token endpoint's checks, store the tokens
        issued for it in family ``family_id`` (the code's own, keyspace.code_family): one
        script (token_scripts.REDEEM_CODE says in which order it checks and what it writes).
        A code of the other form (issued by an instance of the other key layout) costs a
        round trip more."""
        args = [
            registered_scopes,
            client_id,
            self._clock.now(),
            family_id,
            remember_for,
            redirect_uri,
            verifier_challenge,
            "1" if refresh_always else "0",
            access_lifetime,
            refresh_lifetime,
        ]
        forms = [self._tagged, not self._tagged] if self._both_code_forms else [self._tagged]
        for tagged in forms:
            # ``family_id`` is the code's own (keyspace.code_family): not digested again.
            code_key, spent_key = key_pairs.code_keys(code, family_id, tagged=tagged)
            keys = [
                code_key,
                spent_key,
                keyspace.family(family_id),
                keyspace.access_token(access_token),
                keyspace.refresh_token(refresh_token),
            ]
            answer = self._spend(self._redeem_code, keys, args)
            if answer[0] != "unknown":
                break
        if answer[0] != "issued":
            return Redemption(answer[0])
        return Redemption(
            "issued", AuthorizationCode.from_record(answer[1]), answer[2], answer[3] == 1
        )

    def _spend(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run a script that spends a single-use thing; with ``wait_for_replica_ms``, only
        once a replica has it (store/replicated_spend.py)."""
        if not self._wait_for_replica_ms:
            return script(keys=keys, args=args)
        return spend_on_a_replica(self._redis, script, keys, args, self._wait_for_replica_ms)

    # Token families, refresh tokens and spent codes (RFC 9700 §4.14.2, §4.2.4).
    #
    # Every token issued from one authorization code, and every token refreshed from
    # those, belongs to one family. Token records carry the family id; ``family:<id>``
    # holds FAMILY_LIVE while the family may be used. Revoking writes FAMILY_REVOKED:
    # one SET, no scan. A token whose family key is missing counts as revoked too, so a
    # lost or evicted family key fails closed.

    def family_of_spent_code(self, code: str) -> str | None:
        if not self._both_code_forms:
            return self._redis.get(keyspace.spent_code(code))
        pipeline = self._redis.pipeline(transaction=False)
        pipeline.get(keyspace.spent_code(code, tagged=self._tagged))
        pipeline.get(keyspace.spent_code(code, tagged=not self._tagged))
        mine, other = pipeline.execute()
        return mine or other

    def extend_family(
        self, family_id: str, expires_at: int, *, writes: Writes | None = None
    ) -> None:
        """Keep the family key at least until ``expires_at`` (never shortens it)."""
        self._target(writes).expire(
            keyspace.family(family_id), self._ttl_until(expires_at), gt=True
        )

    def family_is_live(self, family_id: str) -> bool:
        return self._redis.get(keyspace.family(family_id)) == FAMILY_LIVE

    def revoke_family(self, family_id: str, ttl: int) -> None:
        """Revoke every token of a family; remembered for ``ttl``, then the missing key
        still reads as revoked."""
        self._redis.set(keyspace.family(family_id), FAMILY_REVOKED, ex=ttl)

    # Token families issued for an account (its sub): revoked by "sign out everywhere".
    # The set lives as long as its newest family can.

    def remember_account_family(
        self, account_id: str, family_id: str, ttl: int, *, writes: Writes | None = None
    ) -> None:
        key = keyspace.account_families(account_id)
        self._add_members(key, [family_id], ttl, writes=writes)

    def take_account_families(self, account_id: str, event: OutboxEntry | None = None) -> list[str]:
        """The account's families, taken; ``event`` (issue 18's account.sessions.revoked)
        goes to the set's outbox stream (announced first) in the same MULTI: the set is
        what signing out everywhere takes, so the two happen together or not at all."""
        key = keyspace.account_families(account_id)
        stream = self._outbox.announce(key) if event is not None else None
        pipeline = self._redis.pipeline(transaction=True)
        pipeline.smembers(key)
        pipeline.delete(key)
        if event is not None and stream is not None:
            pipeline.xadd(stream, event.fields())  # type: ignore[arg-type]
        members = pipeline.execute()[0]
        return sorted(members)

    # Access tokens: opaque, looked up by /userinfo.

    def save_access_token(
        self, token: str, record: AccessToken, *, writes: Writes | None = None
    ) -> None:
        self._target(writes).set(
            keyspace.access_token(token), record.to_record(), ex=self._ttl_until(record.expires_at)
        )

    def load_access_token(self, token: str) -> AccessToken | None:
        raw = self._redis.get(keyspace.access_token(token))
        return AccessToken.from_record(raw) if raw else None

    def load_access_token_and_family(self, token: str) -> tuple[AccessToken | None, bool]:
        """The record and whether its family is live (True for a record without one): one
        MGET (the token names its family; both keys share a slot). A token from before
        tokens named their family: its record, then its family (two round trips)."""
        family_id = keyspace.token_family(token)
        if family_id is not None:
            raw, family_state = self._redis.mget(
                [keyspace.access_token(token), keyspace.family(family_id)]
            )
        else:
            raw = self._redis.get(keyspace.access_token(token))
            family_state = None
        if not raw:
            return None, False
        record = AccessToken.from_record(raw)
        if record.family_id is None:
            return record, True
        if record.family_id != family_id:
            family_state = self._redis.get(keyspace.family(record.family_id))
        return record, family_state == FAMILY_LIVE

    def revoke_access_token(self, token: str) -> None:
        self._redis.delete(keyspace.access_token(token))

    # Refresh tokens, and when each was rotated.

    def save_refresh_token(
        self, token: str, record: RefreshToken, *, writes: Writes | None = None
    ) -> None:
        self._target(writes).set(
            keyspace.refresh_token(token),
            record.to_record(),
            ex=self._ttl_until(record.expires_at),
        )

    def load_refresh_token(self, token: str) -> tuple[RefreshToken | None, int | None]:
        """The record, and when it was rotated (None while it is unused): one MGET when the
        token names its family (both keys share its slot), else two GETs in one pipeline (a
        token from before, or one never issued: its keys' slots differ on a cluster)."""
        keys = list(key_pairs.refresh_keys(token))
        if keyspace.token_family(token) is not None:
            raw, used = self._redis.mget(keys)
        else:
            raw, used = self._gets(keys)
        if not raw:
            return None, None
        return RefreshToken.from_record(raw), int(used) if used else None

    def rotate_refresh_token(
        self,
        token: str,
        *,
        family_id: str,
        client_id: str,
        scope: str,
        registered_scopes: str,
        access_token: str,
        refresh_token: str,
        access_lifetime: int,
        refresh_lifetime: int,
        grace: int,
        remember_revoked_for: int,
    ) -> Rotation:
        """Spend refresh token ``token`` of ``client_id`` (of family ``family_id``, as
        ``family_of_token`` tells) for the new pair, in one script
        (token_scripts.ROTATE_REFRESH_TOKEN says in which order it checks and what it writes)."""
        now = self._clock.now()
        spent_key, used_key = key_pairs.refresh_keys(token)
        answer = self._spend(
            self._rotate_refresh_token,
            [
                spent_key,
                used_key,
                keyspace.access_token(access_token),
                keyspace.refresh_token(refresh_token),
                keyspace.family(family_id),
            ],
            [
                registered_scopes,
                client_id,
                now,
                family_id,
                scope,
                grace,
                remember_revoked_for,
                now + access_lifetime,
                now + refresh_lifetime,
            ],
        )
        outcome = answer[0]
        if outcome == "rotated":
            return Rotation(outcome, RefreshToken.from_record(answer[1]), answer[2])
        if outcome == "reused":
            return Rotation(outcome, family_id=answer[1])
        return Rotation(outcome)

    # Client assertion ids (RFC 7523 §3 item 7, OIDC Core §9): a private_key_jwt assertion
    # is accepted once. Losing these only reopens a replay window as short as the assertion.

    def remember_assertion_jti(self, client_id: str, jti: str, expires_at: int) -> bool:
        """Record a client's assertion ``jti`` until ``expires_at``; False if already seen.

        SET NX: of two requests carrying the same assertion exactly one gets True.
        """
        key = keyspace.assertion_jti(client_id, jti)
        return bool(self._redis.set(key, "1", nx=True, ex=self._ttl_until(expires_at)))

    # Pushed authorization requests (RFC 9126): keyed by the request_uri's digest,
    # short-lived and used once (§4); losing one means the RP pushes again.

    def save_pushed_request(self, request_uri: str, record: PushedRequest) -> None:
        self._redis.set(
            keyspace.pushed_request(request_uri),
            record.to_record(),
            ex=self._ttl_until(record.expires_at),
            nx=True,
        )

    def take_pushed_request(self, request_uri: str) -> PushedRequest | None:
        """Atomically consume a pushed request: of two uses only one gets it."""
        raw = self._redis.getdel(keyspace.pushed_request(request_uri))
        return PushedRequest.from_record(raw) if raw else None
