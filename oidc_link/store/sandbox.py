"""The sandbox Link's shared state in Redis (link/sandbox.py's SandboxSessions): the key its
session handles are sealed with, and what checking codes did to each session. Sandbox only:
the live Link keeps its own sessions, so this is no aggregate of ours and sits apart from
them. Losing a session's state forgives its wrong attempts; losing the key ends every
sandbox sign-in under way (a new key is made)."""

from __future__ import annotations

import base64
import os
from typing import Any

import redis

from oidc_link.clock import Clock
from oidc_link.store import keyspace
from oidc_link.store.base import CHECK_SANDBOX_CODE, Aggregate, Outages


class CodeCheckAhead:
    """One code check of a session as CHECK_SANDBOX_CODE makes it, split over a sign-in
    step's two round trips: the session's state read in the one that locks the flow (a
    store rider: ``queue``, ``answer``), decided here (``check``), and the state it leaves
    written in the one that releases the flow (``after``, a rider too).

    Not one atomic step as the script is, and safe all the same: a session's handle lives
    in one flow only (the flow keeps the one Link answered with; the browser never sees
    it), and a flow's steps run one at a time under its lock, so no other check of this
    session runs between the read and the write. Only a state read under that lock can be
    used (the step says so: ``authenticate``'s ``ahead``); any other check runs the script.
    """

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._key = keyspace.sandbox_session(session_id)
        self._state: str | None = None
        self._answered = False
        self._write: _StateWrite | None = None

    def queue(self, pipeline: Any) -> int:
        pipeline.get(self._key)
        return 1

    def answer(self, results: list[Any]) -> None:
        (state,) = results
        if not isinstance(state, Exception):  # else unanswered: the check runs the script
            self._state = state.decode() if isinstance(state, bytes) else state
            self._answered = True

    def check(self, sent: int, right: bool, max_attempts: int, ttl: int) -> str | None:
        """CHECK_SANDBOX_CODE's outcome on the state read (None: it was not read), its
        write kept for ``after``."""
        if not self._answered:
            return None
        outcome, state = sandbox_check(self._state, sent, right, max_attempts)
        if state is not None:
            self._write = _StateWrite(self._key, state, max(1, ttl))
        return outcome

    def after(self) -> _StateWrite | None:
        """The state ``check`` left, to write with the flow's release (None: unchanged)."""
        return self._write


class _StateWrite:
    """A session's new state, as a rider of the release's round trip."""

    def __init__(self, key: str, state: str, ttl: int) -> None:
        self._key, self._state, self._ttl = key, state, ttl

    def queue(self, pipeline: Any) -> int:
        # As redis-py's ``set`` sends it, without the checks of its dozen options.
        pipeline.execute_command("SET", self._key, self._state, "EX", self._ttl)
        return 1

    def answer(self, results: list[Any]) -> None:
        if isinstance(results[0], Exception):
            raise results[0]


def sandbox_check(
    state: str | None, sent: int, right: bool, max_attempts: int
) -> tuple[str, str | None]:
    """CHECK_SANDBOX_CODE in Python, on a state read before: the outcome, and the state to
    write (None: none, as the script writes none)."""
    if state == "ended":
        return "unknown", None
    attempts = 0
    if state:
        known, _, wrong = state.partition(" ")
        if sent < int(known):
            return "unknown", None
        if sent == int(known):
            attempts = int(wrong)
    if right:
        return "accepted", "ended"
    attempts += 1
    if attempts >= max_attempts:
        return "locked", "ended"
    return "wrong", f"{sent} {attempts}"


class SandboxSessionStore(Aggregate):
    def __init__(self, client: redis.Redis, clock: Clock, outages: Outages) -> None:
        super().__init__(client, clock, outages)
        self._check_code = client.register_script(CHECK_SANDBOX_CODE)
        # Kept once read: what ``sealing_key`` answers, readable without the call.
        self.kept_key: bytes | None = None

    def sealing_key(self, *, again: bool = False) -> bytes:
        """The sandbox's sealing key: made by the first worker to ask (SET NX), read by the
        others, then kept in this process, so a sandbox step asks Redis for it only once.
        ``again``: read it anew (a handle did not open), writing back the one kept here if
        Redis lost it, as keys.py does with signing keys."""
        if self.kept_key is None or again:
            kept = self.kept_key or os.urandom(32)
            pipeline = self._redis.pipeline(transaction=False)
            pipeline.set(keyspace.SANDBOX_KEY, base64.urlsafe_b64encode(kept).decode(), nx=True)
            pipeline.get(keyspace.SANDBOX_KEY)
            _, stored = pipeline.execute()
            self.kept_key = base64.urlsafe_b64decode(stored) if stored else kept
        return self.kept_key

    # ``check_ahead(session_id)``: a check of that session's next code, to read in the flow
    # lock's round trip. The class itself: it sends nothing, so needs no outage wrapper.
    check_ahead = CodeCheckAhead

    def check_code(
        self, session_id: str, sent: int, right: bool, max_attempts: int, ttl: int
    ) -> str:
        """One of link/sandbox.py's CodeOutcome values (see CHECK_SANDBOX_CODE)."""
        outcome = self._check_code(
            keys=[keyspace.sandbox_session(session_id)],
            args=[sent, "1" if right else "0", max_attempts, max(1, ttl)],
        )
        return outcome.decode() if isinstance(outcome, bytes) else outcome
