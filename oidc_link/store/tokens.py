"""Codes, token families, access and refresh tokens, pushed requests and assertion ids in
Redis, each keyed by its secret's digest; single-use things consumed atomically. Stores and
consumes; the grant and rotation rules are oauth's."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from oidc_link.clock import Clock
from oidc_link.models import AccessToken, AuthorizationCode, PushedRequest, RefreshToken
from oidc_link.store import keyspace
from oidc_link.store.base import TAKE_CODE, Aggregate, Outages, Writes

# The two values of a token family's key (see "Token families" below); the scripts below
# spell them too.
FAMILY_LIVE = "live"
FAMILY_REVOKED = "revoked"

# The scripts of the token endpoint's two grants and of /userinfo: each decides on the server
# what would otherwise take a read, a decision in Python and a write (one round trip, not two
# to four), and a check that fails writes nothing. A token's record is the record it comes
# from (a code's, a refresh token's) with its own scope, times and family: the scripts copy
# those records with cjson rather than send them to Python and back.
#
# Shared by both grants: the scope of the new access token, as Authlib's bearer generator
# sets it (OAuthClient.get_allowed_scope): the asked-for words the client is still
# registered for (ARGV[1], space-separated), in their order; nothing left means the token
# answers without a scope and its record keeps the grant's.
_ALLOWED_SCOPE = """
local function allowed_scope(scope, registered_words)
  local registered = {}
  for word in string.gmatch(registered_words, '%S+') do registered[word] = true end
  local kept = {}
  for word in string.gmatch(scope, '%S+') do
    if registered[word] then kept[#kept + 1] = word end
  end
  return table.concat(kept, ' ')
end
"""
# Rotate refresh token KEYS[1] (its rotation mark KEYS[2]) for client ARGV[2] at time ARGV[3]
# into access token KEYS[3] and refresh token KEYS[4]. The family's key is its id after
# prefix ARGV[4]. In the order Authlib's refresh grant checks (RFC 6749 §6): unknown,
# expired, revoked or another client's -> 'invalid'; a scope (ARGV[5], '' for none) beyond
# the granted one -> 'invalid_scope'; both spend nothing. Then the rotation mark (SET NX GET,
# the script's first write: a Redis out of memory refuses it before anything is spent): a
# use later than ARGV[6] seconds after the first revokes the family (FAMILY_REVOKED, for
# ARGV[7] seconds) -> 'reused' and the family id (RFC 9700 §4.14.2). Else the new pair is
# written (access until ARGV[8], refresh until ARGV[9]), the family kept as long as the
# newest token, and the answer is 'rotated', the old record, the access token's scope.
ROTATE_REFRESH_TOKEN = (
    _ALLOWED_SCOPE
    + """
local raw = redis.call('GET', KEYS[1])
if not raw then return {'invalid'} end
local record = cjson.decode(raw)
local now = tonumber(ARGV[3])
local family = ARGV[4] .. record.family_id
if record.expires_at <= now or record.client_id ~= ARGV[2]
    or redis.call('GET', family) ~= 'live' then
  return {'invalid'}
end
local scope = record.scope
if ARGV[5] ~= '' then
  local granted = {}
  for word in string.gmatch(record.scope, '%S+') do granted[word] = true end
  for word in string.gmatch(ARGV[5], '%S+') do
    if not granted[word] then return {'invalid_scope'} end
  end
  scope = ARGV[5]
end
local mark_ttl = math.max(1, record.expires_at - now)
local first = redis.call('SET', KEYS[2], ARGV[3], 'NX', 'GET', 'EX', mark_ttl)
if first and now - tonumber(first) > tonumber(ARGV[6]) then
  redis.call('SET', family, 'revoked', 'EX', ARGV[7])
  return {'reused', record.family_id}
end
local access_scope = allowed_scope(scope, ARGV[1])
local access_expires, refresh_expires = tonumber(ARGV[8]), tonumber(ARGV[9])
record.issued_at = now
record.expires_at = refresh_expires
redis.call('SET', KEYS[4], cjson.encode(record), 'EX', math.max(1, refresh_expires - now))
if access_scope ~= '' then record.scope = access_scope end
record.expires_at = access_expires
redis.call('SET', KEYS[3], cjson.encode(record), 'EX', math.max(1, access_expires - now))
local family_ttl = math.max(1, math.max(access_expires, refresh_expires) - now)
redis.call('EXPIRE', family, family_ttl, 'GT')
return {'rotated', raw, access_scope}
"""
)
# An access token's record (KEYS[1]) and its family's state (the key after prefix ARGV[1];
# '' for a record without a family): what /userinfo needs, in one round trip.
ACCESS_RECORD_AND_FAMILY = """
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local family_id = cjson.decode(raw).family_id
if type(family_id) ~= 'string' then return {raw, ''} end
return {raw, redis.call('GET', ARGV[1] .. family_id) or ''}
"""


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
    def __init__(self, client: redis.Redis, clock: Clock, outages: Outages) -> None:
        super().__init__(client, clock, outages)
        self._take_code = client.register_script(TAKE_CODE)
        self._rotate_refresh_token = client.register_script(ROTATE_REFRESH_TOKEN)
        self._access_record_and_family = client.register_script(ACCESS_RECORD_AND_FAMILY)

    # Authorization codes: single use; a lost code only means the RP starts again.

    def save_code(
        self, code: str, record: AuthorizationCode, *, writes: Writes | None = None
    ) -> None:
        self._target(writes).set(
            keyspace.code(code), record.to_record(), ex=self._ttl_until(record.expires_at)
        )

    def take_code(self, code: str, family_id: str, remember_for: int) -> AuthorizationCode | None:
        """Consume a code, and in the same step remember it as spent into ``family_id`` and
        open that family (for ``remember_for`` seconds; ``extend_family`` lengthens it).

        One script, so atomic: of two concurrent redemptions only one gets the code, and a
        replay at any moment afterwards finds the family to revoke. An unknown code writes
        nothing.
        """
        raw = self._take_code(
            keys=[keyspace.code(code), keyspace.spent_code(code), keyspace.family(family_id)],
            args=[family_id, remember_for, FAMILY_LIVE],
        )
        return AuthorizationCode.from_record(raw) if raw else None

    # Token families, refresh tokens and spent codes (RFC 9700 §4.14.2, §4.2.4).
    #
    # Every token issued from one authorization code, and every token refreshed from
    # those, belongs to one family. Token records carry the family id; ``family:<id>``
    # holds FAMILY_LIVE while the family may be used. Revoking writes FAMILY_REVOKED:
    # one SET, no scan. A token whose family key is missing counts as revoked too, so a
    # lost or evicted family key fails closed.

    def family_of_spent_code(self, code: str) -> str | None:
        return self._redis.get(keyspace.spent_code(code))

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
        with self._transaction(writes) as pipeline:
            pipeline.sadd(key, family_id)
            pipeline.expire(key, ttl)

    def take_account_families(self, account_id: str) -> list[str]:
        key = keyspace.account_families(account_id)
        pipeline = self._redis.pipeline(transaction=True)
        pipeline.smembers(key)
        pipeline.delete(key)
        members, _ = pipeline.execute()
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
        """The record and whether its family is live (True for a record without one), read
        together: one round trip."""
        found = self._access_record_and_family(
            keys=[keyspace.access_token(token)], args=[keyspace.FAMILY_PREFIX]
        )
        if not found:
            return None, False
        raw, family_state = found
        record = AccessToken.from_record(raw)
        return record, record.family_id is None or family_state == FAMILY_LIVE

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
        """The record, and when it was rotated (None while it is unused)."""
        raw, used = self._redis.mget([keyspace.refresh_token(token), keyspace.refresh_used(token)])
        if not raw:
            return None, None
        return RefreshToken.from_record(raw), int(used) if used else None

    def mark_refresh_token_used(self, token: str, record: RefreshToken) -> int | None:
        """Atomically mark a refresh token as rotated now.

        Returns None for the first use, else when the first use happened: of two
        concurrent refreshes exactly one is first (SET NX).
        """
        now = self._clock.now()
        # SET NX GET: sets only when unset, and answers what was there (None: we were first).
        used = self._redis.set(
            keyspace.refresh_used(token),
            str(now),
            nx=True,
            ex=self._ttl_until(record.expires_at),
            get=True,
        )
        return int(used) if used is not None else None

    def rotate_refresh_token(
        self,
        token: str,
        *,
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
        """Spend refresh token ``token`` of ``client_id`` for the new pair, in one script
        (ROTATE_REFRESH_TOKEN says in which order it checks and what it writes)."""
        now = self._clock.now()
        answer = self._rotate_refresh_token(
            keys=[
                keyspace.refresh_token(token),
                keyspace.refresh_used(token),
                keyspace.access_token(access_token),
                keyspace.refresh_token(refresh_token),
            ],
            args=[
                registered_scopes,
                client_id,
                now,
                keyspace.FAMILY_PREFIX,
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
