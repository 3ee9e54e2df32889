"""Starting many runs in one round trip: each run's writes, gated on claiming its slot.

A run is started by a handful of writes (its ticket and initial state, its
collection version, its first messages). :func:`launch` applies the writes
of many runs in one Lua call per batch, so Redis sees a run either wholly
started or not at all, and a scheduler spends one round trip on a batch
instead of several on each run.

A scheduled run is gated on its slot (``Gate``): the monitor's next slot in
the schedule's sorted set must still be the run's slot (else another
scheduler started it, or a poll removed or rescheduled the monitor), then the
slot moves on and the slot's claim key is set ``NX``; only a run that wins
its claim writes anything. A batch can also be gated on the catalog version
it was prepared from: when a poll changed the catalog since, nothing is
written and the caller prepares again.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis

__all__ = ["SENT_AT", "STALE", "Gate", "Launch", "Launcher", "Op", "Slots"]

# What launch() answers for a batch prepared from an older catalog version.
STALE = -2
# In a value written by LPUSHSENT: replaced by the time it is sent (Unix seconds).
SENT_AT = '"__sent_at__"'

# ARGV: expected version ('' for any), claim ttl, claim value, send time, blob
# count, blob names and values, then per run: schedule member, due score, next score,
# claim key, its writes as JSON: [[command, key, arguments...], ...].
# KEYS: the schedule's sorted set, the catalog version.
# Commands are Redis' own, plus SETBLOB key blob (SET NX of a blob shared by
# the batch), HSETBLOB key field blob, EXPIREUP key seconds (EXPIRE only
# when it lengthens the TTL) and LPUSHSENT key value (LPUSH, the value's
# SENT_AT placeholder replaced by the send time).
# Answers one number a run: 1 started, 0 slot already claimed, -1 slot gone;
# or {-2} when the catalog version moved.
_LAUNCH = """
local SENT_AT = '"__sent_at__"'
if ARGV[1] ~= '' and (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return {-2} end
local blobs = {}
local i = 6
for _ = 1, tonumber(ARGV[5]) do
  blobs[ARGV[i]] = ARGV[i + 1]
  i = i + 2
end
local answers = {}
while i <= #ARGV do
  local member, due, following, claim = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local outcome = 1
  if claim ~= '' then
    if member ~= '' then
      local score = redis.call('ZSCORE', KEYS[1], member)
      if not score or tonumber(score) ~= tonumber(due) then
        outcome = -1
      else
        redis.call('ZADD', KEYS[1], following, member)
      end
    end
    if outcome == 1 and not redis.call('SET', claim, ARGV[3], 'NX', 'EX', ARGV[2]) then
      outcome = 0
    end
  end
  if outcome == 1 then
    for _, op in ipairs(cjson.decode(ARGV[i + 4])) do
      local command = op[1]
      if command == 'SETBLOB' then
        redis.call('SET', op[2], blobs[op[3]], 'NX')
      elseif command == 'HSETBLOB' then
        redis.call('HSET', op[2], op[3], blobs[op[4]])
      elseif command == 'LPUSHSENT' then
        redis.call('LPUSH', op[2], (string.gsub(op[3], SENT_AT, ARGV[4], 1)))
      elseif command == 'EXPIREUP' then
        if redis.call('TTL', op[2]) < tonumber(op[3]) then redis.call('EXPIRE', op[2], op[3]) end
      else
        redis.call(unpack(op))
      end
    end
  end
  answers[#answers + 1] = outcome
  i = i + 5
end
return answers
"""

Op = tuple[str, ...]
"""One write: a Redis command, its key and its arguments (see ``_LAUNCH``)."""


@dataclass(frozen=True)
class Gate:
    """The slot a run must win before its writes apply.

    Parameters:
        member: the monitor in the schedule's sorted set; "" to claim the slot
            alone (a backfilled slot, no longer the monitor's next).
        due: the score the monitor must still have (the slot, Unix seconds).
        following: the score it gets when the slot is taken (its next slot).
        claim_key: the slot's claim key (``SET NX``).
    """

    member: str
    due: int
    following: int
    claim_key: str


@dataclass
class Launch:
    """One run's writes (see the module documentation).

    Parameters:
        ops: the writes, in order.
        blobs: values shared by runs of a batch (``SETBLOB`` and ``HSETBLOB``
            name them), sent once per batch however many runs use them.
    """

    ops: list[Op] = field(default_factory=list)
    blobs: dict[str, str] = field(default_factory=dict)

    @functools.cached_property
    def encoded(self) -> str:
        """The writes as the script reads them (encode ahead to spare the send)."""
        return json.dumps(self.ops, separators=(",", ":"))


@dataclass(frozen=True)
class Slots:
    """Where the gates are checked: the schedule's sorted set and the catalog version key."""

    next_key: str
    version_key: str
    claim_seconds: int
    claim_value: str


class Launcher:
    """Applies batches of launches (see the module documentation).

    Args:
        client: the Redis client.
        batch: runs per Lua call (one call blocks Redis while it writes).
    """

    def __init__(self, client: redis.Redis, batch: int = 200) -> None:
        self.redis = client
        self.batch = max(1, batch)
        self._script = client.register_script(_LAUNCH)

    def launch(
        self,
        launches: Sequence[tuple[Launch, Gate | None]],
        slots: Slots | None = None,
        expected_version: int | None = None,
    ) -> list[int]:
        """Apply ``launches`` in one round trip; one answer a launch, or ``[STALE]``.

        Parameters:
            launches: each run's writes and the slot it must win first (None:
                written unconditionally).
            slots: where gates are checked (needed when a launch has one).
            expected_version: the catalog version they were prepared from; when
                it moved, nothing is written and the answer is ``[STALE]``
                (for the first batch that saw it; later batches are not sent).
        """
        if not launches:
            return []
        keys = [slots.next_key, slots.version_key] if slots else ["", ""]
        head = [
            "" if expected_version is None else str(expected_version),
            str(slots.claim_seconds if slots else 1),
            slots.claim_value if slots else "",
            f"{time.time():.3f}",
        ]
        pipe = self.redis.pipeline(transaction=False)
        for start in range(0, len(launches), self.batch):
            self._script(
                keys=keys, args=head + _words(launches[start : start + self.batch]), client=pipe
            )
        answers: list[int] = []
        for batch in pipe.execute():
            outcomes = [int(answer) for answer in batch]
            if outcomes == [STALE]:
                return [STALE]
            answers.extend(outcomes)
        return answers


def _words(launches: Sequence[tuple[Launch, Gate | None]]) -> list[str]:
    blobs: dict[str, str] = {}
    for one, _ in launches:
        blobs.update(one.blobs)
    words = [str(len(blobs))]
    for name, value in blobs.items():
        words += [name, value]
    for one, gate in launches:
        if gate is None:
            words += ["", "0", "0", ""]
        else:
            words += [gate.member, str(gate.due), str(gate.following), gate.claim_key]
        words.append(one.encoded)
    return words
