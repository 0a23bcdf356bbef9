"""How a change's own script tells the outbox: the Lua that XADDs an outbox entry to the
stream passed as the script's last key, in the same atomic step as the change, and the
arguments it takes. The stream is announced first (store/outbox.py says why)."""

from __future__ import annotations

from oidc_link.store.outbox import OutboxEntry

# Prepended to a script whose KEYS[1] is the changed key: ``tell(at)`` adds the entry whose
# kind, id and body are ARGV[at], ARGV[at + 1] and ARGV[at + 2] to the stream in KEYS[2];
# without a KEYS[2] (the change tells nobody) it adds nothing. Called only when the change
# is to happen, so a change that does not (a lost compare-and-set, a delete of nothing)
# tells nothing; and before the change's own write, since Redis does not roll a script
# back: a refused XADD (a full Redis, a key of the wrong type) leaves the change undone.
TELL = """
local function tell(at)
  if KEYS[2] then
    redis.call('XADD', KEYS[2], '*', 'kind', ARGV[at], 'id', ARGV[at + 1], 'body', ARGV[at + 2])
  end
end
"""

# A key deleted, telling its stream (``tell(1)``) only when there was a key to delete: an
# account's delete, a consent's revocation. Returns 1 when it deleted, else 0.
DELETE_AND_TELL = TELL + (
    "if redis.call('EXISTS', KEYS[1]) == 1 then\n"
    "  tell(1)\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  return 1\n"
    "end\n"
    "return 0\n"
)


def entry_args(entry: OutboxEntry | None) -> list[str]:
    """The three arguments ``tell`` reads, or none when there is nothing to tell."""
    if entry is None:
        return []
    fields = entry.fields()
    return [fields["kind"], fields["id"], fields["body"]]
