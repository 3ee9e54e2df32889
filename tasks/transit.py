"""Steps whose message was lost on its way to a worker: found and sent again.

kombu's Redis transport takes a message off its queue with ``BRPOP`` and
files it among the unacknowledged messages only afterwards, in a second
round trip from the worker. A worker killed between the two (or one whose
connection dropped with the ``BRPOP`` reply unread) leaves the message
nowhere in Redis: not waiting, not unacknowledged, not noted by any worker.
Neither the broker's redelivery nor the lost worker's held steps can bring
such a step back, and its run would wait for its deadline.

The run registry still knows the step: it was sent (its queue is known), it
has no result and no delivery ever started it. After a worker is lost, or
Redis was unreachable, the upkeep looks through the in-flight runs for such
steps that are also in no queue and among no unacknowledged messages, and
held by no worker. A step found so twice, ``CONFIRM_SECONDS`` apart (a live
worker files what it took within milliseconds), is sent again with a token;
should the first message turn up after all, its delivery finds the step
taken and is dropped, so the request is never sent twice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from store.keys import text
from store.records import RunTicket, entry_field
from tasks.context import Services
from tasks.liveness import UNACKED_HASH, send_again
from tasks.messages import step_key

log = logging.getLogger(__name__)
JSON = dict[str, Any]
# A step nowhere at two looks this far apart is lost (a worker files a message
# it took within milliseconds; a false alarm costs a note, never a second request).
CONFIRM_SECONDS = 2.0
# After a worker is lost or Redis came back, look this long (every upkeep round).
WATCH_SECONDS = 10.0
# And once in this long anyway, for a reply lost in any other way.
LOOK_EVERY_SECONDS = 60.0
# kombu's Redis transport keeps messages of priority p > 0 in "<queue>\x06\x16<p>".
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")

# KEYS: queues, then the unacknowledged-messages hash. ARGV: "<run id> <step key>" of
# each step looked for. Returns those found in a message (by the message's argsrepr).
FIND_MESSAGES = """
local wanted = {}
for _, marker in ipairs(ARGV) do wanted[marker] = true end
local found = {}
local function look(message)
    for run, step in string.gmatch(message, 'run=([^ "\\\\]+) step=([^ "\\\\]+) item=') do
        local marker = run .. ' ' .. step
        if wanted[marker] then
            found[#found + 1] = marker
            wanted[marker] = nil
        end
    end
end
for i = 1, #KEYS - 1 do
    if redis.call('TYPE', KEYS[i])['ok'] == 'list' then
        for _, message in ipairs(redis.call('LRANGE', KEYS[i], 0, -1)) do look(message) end
    end
end
for _, message in ipairs(redis.call('HVALS', KEYS[#KEYS])) do look(message) end
return found
"""


@dataclass(frozen=True)
class Stray:
    """A sent step that no delivery started and nothing in Redis holds."""

    run_id: str
    branch_key: str
    number: int
    cursor: JSON
    queue: str

    @property
    def marker(self) -> str:
        return f"{self.run_id} {step_key(self.branch_key, self.number)}"


class TransitWatch:
    """Finds stray steps and sends them again (one per upkeep thread).

    Parameters:
        services: Redis-backed services of the process's app.
    """

    def __init__(self, services: Services) -> None:
        self.services = services
        self._find = services.registry.redis.register_script(FIND_MESSAGES)
        self._suspects: dict[str, float] = {}
        self._watch_until = 0.0
        self._next_look = time.monotonic() + LOOK_EVERY_SECONDS

    def alert(self) -> None:
        """A worker was lost or Redis was unreachable: look closely for a while."""
        self._watch_until = time.monotonic() + WATCH_SECONDS

    def run_once(self) -> int:
        """Look for strays if it is time; send again those seen twice. How many were sent."""
        now = time.monotonic()
        if now >= self._watch_until and now < self._next_look and not self._suspects:
            return 0
        self._next_look = now + LOOK_EVERY_SECONDS
        strays = self.strays()
        suspects = {stray.marker: self._suspects.get(stray.marker, now) for stray in strays}
        self._suspects = suspects
        sent = 0
        for stray in strays:
            if now - suspects[stray.marker] >= CONFIRM_SECONDS:
                del self._suspects[stray.marker]
                sent += self._send(stray)
        return sent

    def strays(self) -> list[Stray]:
        """Steps of in-flight runs that were sent, never started, and are nowhere now."""
        registry = self.services.registry
        candidates: list[Stray] = []
        for run_id in registry.redis.zrange(registry.keys.active_runs(), 0, -1):
            candidates += self._unstarted(text(run_id))
        candidates = [stray for stray in candidates if not self._held(stray)]
        if not candidates:
            return []
        queues = {stray.queue + suffix for stray in candidates for suffix in PRIORITY_SUFFIXES}
        markers = [stray.marker for stray in candidates]
        found = {text(m) for m in self._find(keys=[*sorted(queues), UNACKED_HASH], args=markers)}
        return [stray for stray in candidates if stray.marker not in found]

    def _unstarted(self, run_id: str) -> list[Stray]:
        """The current step of each open branch of a run, when it was sent and never started."""
        registry = self.services.registry
        ticket = registry.ticket(run_id)
        if ticket is None or _younger_than(ticket, CONFIRM_SECONDS):
            return []
        if registry.redis.exists(registry.keys.run_final(run_id)):
            return []
        progress = registry.progress(run_id)
        results = registry.results(run_id)
        ended = {text(b) for b in registry.redis.smembers(registry.keys.run_done(run_id))}
        found = []
        for branch in ticket.plan["branches"]:
            if branch["key"] in ended:
                continue
            stray = _current_step(ticket, branch, progress, results)
            if stray is not None:
                found.append(stray)
        return found

    def _held(self, stray: Stray) -> bool:
        """Whether any worker (alive or lost) noted the step: then liveness resolves it."""
        workers = self.services.workers
        field = entry_field(stray.run_id, step_key(stray.branch_key, stray.number))
        return any(workers.holds(worker, field) for worker in workers.known())

    def _send(self, stray: Stray) -> int:
        note = (
            "sent again: its message was lost on its way to a worker (the worker was lost"
            " or its connection dropped); it had not started"
        )
        args = [stray.run_id, stray.branch_key, stray.number, stray.cursor]
        return int(send_again(self.services, args, stray.queue, note, owner=None))


def _current_step(
    ticket: RunTicket, branch: JSON, progress: dict[str, Any], results: dict[str, JSON]
) -> Stray | None:
    """A branch's step in flight: sent (its queue known), no result, no delivery started it."""
    key = str(branch["key"])
    number, queue = 0, ticket.queues.get(step_key(key, 0))
    cursor: JSON = {"index": 0, **({"iteration": 0} if branch.get("dynamic") else {})}
    while step_key(key, number) in results:
        following = results[step_key(key, number)].get("next")
        queue = progress.get(f"{step_key(key, number + 1)}:queue")
        if following is None or queue is None:
            return None  # the branch ends here, or its next step is not sent yet
        number, cursor = number + 1, dict(following)
    if queue is None or f"{step_key(key, number)}:owner" in progress:
        return None
    return Stray(ticket.run_id, key, number, cursor, str(queue))


def _younger_than(ticket: RunTicket, seconds: float) -> bool:
    """Whether the run started less than ``seconds`` ago (its messages may not be sent yet)."""
    try:
        started = datetime.fromisoformat(ticket.started_at).timestamp()
    except ValueError:
        return False
    return time.time() - started < seconds
