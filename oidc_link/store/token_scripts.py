"""The Lua scripts of the token endpoint's two grants (store/tokens.py runs
them). Text only: no keys (the callers pass them) and no records (cjson copies them)."""

from __future__ import annotations

# Each script decides on the server what would otherwise take a read, a decision in Python
# and a write: one round trip, not two to four. A check that fails stores no token (a code
# is still spent: on its first presentation, right or wrong). A token's record is the record
# it comes from (a code's, a refresh token's) with its own scope, times and family: the
# scripts copy those records with cjson rather than send them to Python and back.
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
# Rotate refresh token KEYS[1] (its rotation mark KEYS[2]) of family ARGV[4] (its key KEYS[5],
# passed: on a cluster a script may touch only the keys it is given) for client ARGV[2] at
# time ARGV[3] into access token KEYS[3] and refresh token KEYS[4]. In the order Authlib's
# refresh grant checks (RFC 6749 §6): unknown, of another family than ARGV[4], expired,
# revoked or another client's -> 'invalid'; a scope (ARGV[5], '' for none) beyond
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
local family = KEYS[5]
if record.family_id ~= ARGV[4] or record.expires_at <= now or record.client_id ~= ARGV[2]
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
# Redeem code KEYS[1] for client ARGV[2] at time ARGV[3]: the code's step of the token endpoint
# (RFC 6749 §4.1.3, RFC 7636 §4.6). A missing code -> 'unknown', nothing written. A code that is
# there is spent whatever follows: it is remembered as spent into family ARGV[4] (KEYS[2]) and
# that family (KEYS[3]) opened (NX: revoked first stays revoked), both for ARGV[5] seconds, then
# the code deleted: a Redis out of memory refuses a script's first write that can grow memory but
# must let every later one run, so a DEL first would spend the code and then be made to go on.
# Then Authlib's checks, in its order: another client's or expired -> 'invalid'; a redirect_uri
# (ARGV[6]) not the one the code was issued for -> 'redirect_uri'; PKCE with ARGV[7], the S256 of
# the presented code_verifier ('' when none, '!' when malformed: no challenge is '!') ->
# 'pkce_unexpected', 'pkce_missing', 'pkce_mismatch'. The challenge is no secret (it crossed the
# browser), so a plain comparison gives nothing away. Only then are the access token (KEYS[4], for
# ARGV[9] seconds) and, when the client gets refresh tokens always (ARGV[8] = '1') or the scope
# has offline_access (OIDC Core §11), the refresh token (KEYS[5], for ARGV[10] seconds) written,
# and the family kept as long as the newest. Answers 'issued', the code's record, the access
# token's scope, 1 or 0 (with a refresh token).
REDEEM_CODE = (
    _ALLOWED_SCOPE
    + """
local raw = redis.call('GET', KEYS[1])
if not raw then return {'unknown'} end
redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5])
redis.call('SET', KEYS[3], 'live', 'EX', ARGV[5], 'NX')
redis.call('DEL', KEYS[1])
local code = cjson.decode(raw)
local now = tonumber(ARGV[3])
if code.client_id ~= ARGV[2] or code.expires_at <= now then return {'invalid'} end
local redirect_uri = code.redirect_uri
if type(redirect_uri) == 'string' and redirect_uri ~= '' and redirect_uri ~= ARGV[6] then
  return {'redirect_uri'}
end
local challenge = code.code_challenge
if type(challenge) ~= 'string' or challenge == '' then
  if ARGV[7] ~= '' then return {'pkce_unexpected'} end
elseif ARGV[7] == '' then
  return {'pkce_missing'}
elseif ARGV[7] ~= challenge then
  return {'pkce_mismatch'}
end
local access_scope = allowed_scope(code.scope, ARGV[1])
local access_expires = now + tonumber(ARGV[9])
local newest = access_expires
local token = {
  client_id = code.client_id, subject = code.subject, scope = code.scope,
  identity = code.identity, family_id = ARGV[4], issued_at = now, sid = code.sid,
  claims = code.claims,
}
local with_refresh = 0
if ARGV[8] == '1' or string.find(' ' .. code.scope .. ' ', ' offline_access ', 1, true) then
  with_refresh = 1
  token.expires_at = now + tonumber(ARGV[10])
  newest = math.max(newest, token.expires_at)
  redis.call('SET', KEYS[5], cjson.encode(token), 'EX', ARGV[10])
end
if access_scope ~= '' then token.scope = access_scope end
token.expires_at = access_expires
redis.call('SET', KEYS[4], cjson.encode(token), 'EX', ARGV[9])
redis.call('EXPIRE', KEYS[3], math.max(1, newest - now), 'GT')
return {'issued', raw, access_scope, with_refresh}
"""
)
