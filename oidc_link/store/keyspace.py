"""Every Redis key name and the fixed TTLs: the data layout, spelled once.

Builds names only; sends nothing. A key is ``oidc-link:v1:<kind>:<id>``; bearer secrets are
named by their SHA-256 digest, so a key never reveals one. Changing a name here moves data:
an upgrade must still read what the previous version wrote (tests/test_keyspace.py).
"""

from __future__ import annotations

import re

from oidc_link.ids import digest

PREFIX = "oidc-link:v1:"

# Redis Cluster: every script, MULTI/EXEC and MGET must touch keys of one hash slot, so keys
# that change together carry one hash tag (the text between the first "{" and "}"), chosen
# per aggregate. Across aggregates, one plain pipeline (a cluster client sends each node its
# part), ordered to fail closed. What the store sends with more than one key (issue 17's
# inventory, as laid out since), and the slot; tests/test_hash_slots.py checks it:
#
# | operation (store module)                 | keys                               | slot      |
# |------------------------------------------|------------------------------------|-----------|
# | flows.lock_and_load (pipeline)           | flow_lock, flow (+ riders)         | {flow}    |
# | flows.release (pipeline; RELEASE_LOCK)   | flow, flow_done, flow_lock (+batch)| {flow}    |
# | limits COUNT_WITHIN_LIMITS (a script per | one subject's rate counters        | {subject} |
# |   subject, one pipeline); REFUND, count  |                                    |           |
# | tokens REDEEM_CODE (Lua)                 | code, code_spent, family, access,  | family    |
# |                                          | refresh (the code names the family)|           |
# | tokens ROTATE_REFRESH_TOKEN (Lua)        | refresh, refresh_used, access,     | family    |
# |                                          | refresh, family (the token names it)|          |
# | tokens.load_access_token_and_family MGET | access, family                     | family    |
# | tokens.load_refresh_token (MGET)         | refresh, refresh_used              | family    |
# |   (a token naming no family: two GETs)   |                                    |           |
# | ADD_MEMBERS (Lua: SADD + EXPIRE), MULTIs | one set: session_links,            | its own   |
# |   of sessions and tokens                 | person_sessions, account_families  |           |
# | sessions.of_person, accounts.page,       | GETs in one pipeline (no MGET)     | several   |
# |   accounts.for_email_and_record          |                                    |           |
# | accounts.add, save_account_link          | plain pipeline, record first       | several   |
# | accounts.delete                          | the record's script, then the list | several   |
# | accounts ADD_RECORD, SWAP_RECORD,        | account, outbox(account): the      | account   |
# |   DELETE_AND_TELL (Lua: issue 18)       |   change and its event             |           |
# | consents.add (MULTI)                     | consent                            | its own   |
# | sessions TAKE_AND_TELL (Lua): a logout   | session_links and its outbox stream| session_  |
# |   takes clients, writes their notice     |   (outbox: tagged with its name)   |   links   |
# | consents DELETE_AND_TELL (Lua)           | consent, outbox(consent)           | consent   |
# | tokens.take_account_families (MULTI)     | account_families, its outbox       | that set  |
# | events.save, events.page                 | plain pipelines: event, events_of, | several   |
# |                                          |   events_of_type (record first)    |           |
# | sandbox CHECK_SANDBOX_CODE (Lua)         | sandbox_session                    | its own   |
# | Writes batches: the code step, a new SSO | plain pipeline of the above, each  | several   |
# |   session, an SSO code                   | method's write one key or script   |           |
# | outbox.announce (ZADD GT), then the      | outbox_index; then the aggregate's | its own;  |
# |   change's script or MULTI with its XADD | key(s) and outbox stream           | the key's |
# | outbox.sizes (pipeline of XLEN)          | outbox streams                     | several   |
# | outbox lease (SET NX PX), RELEASE_LOCK,  | one stream, or its lease           | the       |
# |   XRANGE, XDEL, DELETE_IF_EMPTY (Lua)    |                                    | stream's  |
# | outbox FORGET_IF_UNCHANGED (Lua)         | outbox_index                       | its own   |
# | deliveries.add (MULTI of XADDs), FINISH, | outbox_deliveries, outbox_retry    | {deliver- |
# |   RETRY_LATER, PROMOTE_DUE (Lua), backlog|                                    |  ies}     |
#
# Tokens issued before (no family in them) keep their untagged names and are read as before:
# they never ran on a cluster. The ``compatible`` key layout (config/redis_settings.py, for a
# rolling upgrade from 1fcd0cc) still writes tokens and codes that way. Kinds kept under their
# names (no migration): signing keys, sessions, token families, accounts, consents,
# idempotency records.

# A flow (and the note of how it finished) outlives the flow's expiry by this much, only so
# that a late visit can be told what happened and sent back to the right site.
FLOW_AFTERLIFE = 3600

# Kinds kept without a TTL, each on purpose: a key ring must outlive every token it signed
# (keys.py retires keys explicitly); the list of rings tells a new installation from a lost
# ring; accounts, their lists and email index are durable records a platform deletes; the
# sandbox's sealing key must stay the one every worker has read (sandbox only); a webhook
# endpoint's state must stay disabled until an operator enables it; the log of events handed
# to webhooks is capped by its length instead (store/webhook_endpoints.py); the outbox's
# streams, index and retries hold what must still be told, until the relay and the workers
# have handed it on (an expiry would lose an event: they empty and drop them instead).
DURABLE_KINDS = frozenset(
    {
        "outbox",
        "outbox_index",
        "outbox_deliveries",
        "outbox_retry",
        "keys",
        "keyrings",
        "account",
        "accounts_of",
        "account_email",
        "sandbox_key",
        "webhook_endpoint",
        "webhook_events",
    }
)


def pattern(kind: str = "") -> str:
    """A SCAN/KEYS match for every key of ``kind`` (every key of ours without one): for
    tests and the benchmark; the service never scans."""
    return PREFIX + (kind + ":*" if kind else "*")


def kind_of(key: str) -> str:
    """The kind of one of our keys: ``oidc-link:v1:flow:abc`` -> ``flow``."""
    return key.removeprefix(PREFIX).split(":")[0]


# Flows: pending sign-ins, how they finished, and the lock held while Link is called.


# A sign-in's keys share its id as their hash tag: its steps write them together. (Renamed
# from the untagged names of 1fcd0cc: a sign-in pending during the upgrade starts again.
# ``tagged=False``: 1fcd0cc's names, for the ``compatible`` key layout, whose sign-ins may
# move between its instances and 1fcd0cc's.)


def _of_flow(kind: str, flow_id: str, tagged: bool) -> str:
    return PREFIX + kind + (":{" + flow_id + "}" if tagged else ":" + flow_id)


def flow(flow_id: str, *, tagged: bool = True) -> str:
    return _of_flow("flow", flow_id, tagged)


def finished_flow(flow_id: str, *, tagged: bool = True) -> str:
    return _of_flow("flow_done", flow_id, tagged)


def flow_lock(flow_id: str, *, tagged: bool = True) -> str:
    return _of_flow("flow_lock", flow_id, tagged)


# SSO sessions (by the cookie's digest), what each signed in to (by its public sid), and a
# person's sessions (by their email's digest).


def session(secret: str) -> str:
    return session_of_digest(digest(secret))


def session_of_digest(session_digest: str) -> str:
    return PREFIX + "session:" + session_digest


def session_dependents(sid: str) -> str:
    """What depends on a session: the clients it signed in to and its token families (the
    key's kind keeps its stored name, ``session_links``)."""
    return PREFIX + "session_links:" + sid


def person_sessions(email: str) -> str:
    return PREFIX + "person_sessions:" + digest(email.lower())


def pending_logout(logout_id: str) -> str:
    return PREFIX + "logout:" + logout_id


# Rate counters: one per kind, subject (its digest) and fixed window. One subject's counters
# share its digest as their hash tag, so that one script counts an event against them all;
# an event counted against several subjects takes a script per subject (store/limits.py).
# (Renamed from 1fcd0cc's untagged names: the windows running at the upgrade start afresh.)


def rate_counter(kind: str, subject: str, window: int, now: int) -> str:
    return f"{PREFIX}rate:{kind}:{{{digest(subject)}}}:{now // window}"


def rate_counter_ttl(window: int) -> int:
    """A window's counter outlives it by a second, so it never expires mid-window."""
    return window + 1


# Codes, token families and tokens (by their digests), pushed requests, assertion ids.
#
# A token family's keys share one hash slot: the family's own key (its name unchanged since
# 1fcd0cc, untagged, so its slot is that of its whole name), and the code that opens it,
# its spent mark and its tokens, whose hash tag is the family key's whole name. A token
# carries its family id (``<family id>.<secret>``), so its key is named without a lookup;
# a token from before (no family in it) keeps its untagged name: those never ran on a
# cluster, and one Redis serves them as before.

# A family's key is this prefix and its id.
FAMILY_PREFIX = PREFIX + "family:"
# What a family id looks like (code_family's hex; earlier versions' random URL-safe ids): a token
# whose text before the mark is anything else names no family, and no brace of it can reach
# a key's hash tag.
_FAMILY_ID = re.compile(r"fam_[A-Za-z0-9_-]{1,64}")
# Between a token's family id and its secret (neither a family id nor a secret has one).
TOKEN_FAMILY_MARK = "."  # noqa: S105 - a separator, not a secret


def family(family_id: str) -> str:
    return FAMILY_PREFIX + family_id


def token_family(token: str) -> str | None:
    """The family id a token names, or None for one issued before tokens carried it."""
    family_id, mark, _ = token.partition(TOKEN_FAMILY_MARK)
    return family_id if mark and _FAMILY_ID.fullmatch(family_id) else None


def _of_family(kind: str, family_id: str, secret: str) -> str:
    return PREFIX + kind + ":{" + family(family_id) + "}" + digest(secret)


def code_family(code: str) -> str:
    """The id of the family a code opens, named by the code itself (its digest, kept apart
    from the one its key uses): the code's key is then in the family's slot, and both the
    step that issues the code and the one that redeems it know the family."""
    return "fam_" + digest("token family\x00" + code)[:32]


def code(code: str, *, tagged: bool = True) -> str:
    """A code's key: in its family's slot, or (``tagged=False``) as 1fcd0cc named it, for
    the ``compatible`` key layout (config/redis_settings.py)."""
    if not tagged:
        return PREFIX + "code:" + digest(code)
    return _of_family("code", code_family(code), code)


def spent_code(code: str, *, tagged: bool = True) -> str:
    if not tagged:
        return PREFIX + "code_spent:" + digest(code)
    return _of_family("code_spent", code_family(code), code)


def account_families(account_id: str) -> str:
    return PREFIX + "account_families:" + account_id


def _of_token(kind: str, token: str) -> str:
    family_id = token_family(token)
    if family_id is None:
        return PREFIX + kind + ":" + digest(token)  # issued before: its untagged name
    return _of_family(kind, family_id, token)


def access_token(token: str) -> str:
    return _of_token("access_token", token)


def refresh_token(token: str) -> str:
    return _of_token("refresh_token", token)


def refresh_used(token: str) -> str:
    return _of_token("refresh_used", token)


def pushed_request(request_uri: str) -> str:
    return PREFIX + "pushed:" + digest(request_uri)


def assertion_jti(client_id: str, jti: str) -> str:
    return PREFIX + "assertion_jti:" + digest(client_id + "\x00" + jti)


# Consents, by (client, user).


def consent(client_id: str, user: str) -> str:
    return f"{PREFIX}consent:{client_id}:{user}"


# Signing keys: a ring (hash) per algorithm, and which rings this Redis has held.


def key_ring(alg: str) -> str:
    return PREFIX + "keys:" + alg


KEY_RINGS = PREFIX + "keyrings"


# The platform's records: accounts, their lists and email index, Account Links (public half
# by id, token by digest), account-page sessions, Idempotency-Key records.


def account(account_id: str) -> str:
    return PREFIX + "account:" + account_id


def accounts_of(owner: str) -> str:
    return PREFIX + "accounts_of:" + owner


def account_email(owner: str, email: str) -> str:
    return PREFIX + "account_email:" + owner + ":" + digest(email.lower())


def account_link(account_link_id: str) -> str:
    return PREFIX + "link:" + account_link_id


def account_link_token(token: str) -> str:
    return PREFIX + "link_token:" + digest(token)


def account_session(secret: str) -> str:
    return PREFIX + "account_session:" + digest(secret)


def idempotency(scope: str, key: str) -> str:
    return PREFIX + "idempotency:" + scope + ":" + digest(key)


# The sandbox Link's state: what checking codes did to each session (by the session id's
# digest), and the key its session handles are sealed with.


def sandbox_session(session_id: str) -> str:
    return PREFIX + "sandbox_session:" + digest(session_id)


SANDBOX_KEY = PREFIX + "sandbox_key"


# The outbox (issue 18): what must reach someone outside (a platform's event, a back-channel
# logout notice), written by the same script or MULTI as the change that causes it. That
# needs the change's hash slot, so each aggregate has its own stream, tagged like the key
# the change writes (store/outbox.py says how entries move on from there).


def hash_tag(key: str) -> str:
    """What Redis hashes to place ``key`` (Cluster spec): the text between its first "{"
    and the first "}" after it when that is not empty, else the whole name."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def outbox(aggregate_key: str) -> str:
    """The stream of what changes to ``aggregate_key`` must tell, in that key's slot."""
    return PREFIX + "outbox:{" + hash_tag(aggregate_key) + "}"


# Streams that may hold entries not yet handed on: member the stream's name, score when a
# writer last announced it (unix seconds). Announced before the write that fills the stream, so no
# entry is ever in a stream nobody knows of.
OUTBOX_INDEX = PREFIX + "outbox_index"


# Webhooks (issue 18): each configured endpoint's state (disabled, with when and why; its last
# delivery), by its id (config/webhooks.py's ``endpoint_id``), and the log of events handed to
# webhook delivery (a capped stream: what ``oidc-link events list`` shows and ``resend``
# reads; a resend's entry goes to that log's outbox stream, in its slot).


def webhook_endpoint(endpoint_id: str) -> str:
    return PREFIX + "webhook_endpoint:" + endpoint_id


WEBHOOK_EVENTS = PREFIX + "webhook_events"


# Events (issue 18 item 1): what the /v1 API lists at ``GET /v1/events``, saved as each
# event leaves its outbox stream. The record under its id, and per owner (a client, or its
# sector: who sees the owner's accounts sees its events) two indexes scored by ``created``:
# all of the owner's events, and those of one type (the ``type`` filter). All kept
# EVENT_RETENTION, as Stripe keeps events 30 days; an index is trimmed of older members on
# each save, and expires that long after its last one.
EVENT_RETENTION = 30 * 86400


def event(event_id: str) -> str:
    return PREFIX + "event:" + event_id


def events_of(owner: str) -> str:
    return PREFIX + "events_of:" + owner


def events_of_type(owner: str, event_type: str) -> str:
    return PREFIX + "events_of_type:" + owner + ":" + event_type


def outbox_lease(stream: str) -> str:
    """Held (``SET NX PX``) by the one relay moving ``stream``'s entries on, in its slot."""
    return PREFIX + "outbox_lease:{" + hash_tag(stream) + "}"


# Where entries wait to be delivered, once the relay has taken them from their aggregates'
# streams: one stream read by the consumer group OUTBOX_GROUP (every instance's workers), and
# the entries waiting for their next attempt, scored by when it is due (unix seconds). Both
# in one slot, so that one script moves an entry between them. No TTL, no MAXLEN: an entry
# leaves by being delivered or given up, never by being trimmed.
OUTBOX_DELIVERIES = PREFIX + "outbox_deliveries:{deliveries}"
OUTBOX_RETRIES = PREFIX + "outbox_retry:{deliveries}"
OUTBOX_GROUP = "delivery"
