"""The registry of in-flight runs.

``dispatch`` registers a run with its deadline before sending any task;
request tasks record each step's executions here as they finish (so a run
that ends at its deadline still reports what did run); exactly one
finalizer claims the run; the sweeper finds runs past their deadline.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from store.keys import Keys, text

JSON = dict[str, Any]
# In-flight keys outlive the deadline by this much, so a late finalizer or
# sweeper still finds them; then Redis drops them on its own.
KEEP_AFTER_DEADLINE = 3600


@dataclass
class RunTicket:
    """What every task of a run needs to know about it (JSON-safe).

    Parameters:
        run_id: the run's id.
        collection_digest: the cached collection version's key.
        collection_id / collection_name: for reports.
        plan: the planner's branches (``Plan.to_dict()``).
        options: ``RunOptions.to_dict()``.
        iterations: iteration count; iteration_data: the data rows.
        deadline: Unix time after which the sweeper ends the run.
        source: how the run was started (monitor, api, schedule, collection_runner, newman).
        monitor: the monitor's uid and name, for monitor runs.
        webhooks: URLs the report is posted to.
        network_pin: a network the monitor pins every request to.
        networks: the routing rules in force when the run started, so every
            worker routes the same way without a copy of the networks file.
    """

    run_id: str
    collection_digest: str
    collection_id: str
    collection_name: str
    plan: JSON
    options: JSON
    iterations: int
    deadline: float
    started_at: str
    source: str = "api"
    environment_id: str | None = None
    environment_name: str | None = None
    iteration_data: list[JSON] = field(default_factory=list)
    monitor: JSON | None = None
    webhooks: list[str] = field(default_factory=list)
    network_pin: str | None = None
    networks: JSON = field(default_factory=dict)  # the networks file's content, for routing
    queues: JSON = field(default_factory=dict)  # step key -> queue it was sent to
    items: list[list[str]] = field(default_factory=list)  # [id, name] in collection order

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> RunTicket:
        return cls(**json.loads(text))


# KEYS: results, states, progress. ARGV: step key, result, branch key, state,
# expiry, hand-off field ("" for none), next queue.
_FINISH_STEP = """
local recorded = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
local handed = 0
if recorded == 1 then
    redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
    if ARGV[6] ~= '' then
        handed = redis.call('HSETNX', KEYS[3], ARGV[6], ARGV[7])
        redis.call('EXPIRE', KEYS[3], ARGV[5])
    end
end
return {recorded, handed}
"""


@dataclass
class StepStart:
    """What ``begin_step`` read for a step."""

    ticket: RunTicket | None
    final: bool
    attempt: int
    result: JSON | None
    state: JSON


class RunRegistry:
    """In-flight runs in Redis."""

    def __init__(self, client: redis.Redis, keys: Keys | None = None) -> None:
        self.redis = client
        self.keys = keys or Keys()
        self._finish = client.register_script(_FINISH_STEP)

    # -- collections ------------------------------------------------------

    def cache_collection(self, collection: JSON, ttl: float) -> str:
        """Store a collection version once; return its digest."""
        text = json.dumps(collection, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(text.encode()).hexdigest()[:32]
        key = self.keys.collection(digest)
        if not self.redis.set(key, text, nx=True, ex=int(ttl)):
            self.redis.expire(key, int(ttl))
        return digest

    def collection(self, digest: str) -> JSON | None:
        raw = self.redis.get(self.keys.collection(digest))
        return json.loads(raw) if raw else None

    # -- runs ---------------------------------------------------------------

    def register(self, ticket: RunTicket, initial_state: JSON) -> None:
        """Record a run and its initial variable state before any task is sent."""
        ttl = int(max(ticket.deadline - time.time(), 1) + KEEP_AFTER_DEADLINE)
        pipe = self.redis.pipeline()
        pipe.set(self.keys.run(ticket.run_id), ticket.to_json(), ex=ttl)
        pipe.hset(self.keys.run_states(ticket.run_id), "initial", json.dumps(initial_state))
        pipe.expire(self.keys.run_states(ticket.run_id), ttl)
        pipe.zadd(self.keys.active_runs(), {ticket.run_id: ticket.deadline})
        pipe.execute()

    def ticket(self, run_id: str) -> RunTicket | None:
        raw = self.redis.get(self.keys.run(run_id))
        return RunTicket.from_json(raw) if raw else None

    def states(self, run_id: str) -> dict[str, JSON]:
        raw = self.redis.hgetall(self.keys.run_states(run_id))
        return {text(k): json.loads(v) for k, v in raw.items()}

    # -- steps --------------------------------------------------------------

    def claim_handoff(self, run_id: str, step_key: str, queue: str) -> bool:
        """Claim the sending of a step (once), noting the queue it goes to."""
        progress = self.keys.run_progress(run_id)
        claimed = bool(self.redis.hsetnx(progress, f"{step_key}:queue", json.dumps(queue)))
        self.redis.expire(progress, KEEP_AFTER_DEADLINE * 2)
        return claimed

    def mark_branch_done(self, run_id: str, branch_key: str) -> int:
        """Note that a branch ended; return how many have."""
        key = self.keys.run_done(run_id)
        pipe = self.redis.pipeline()
        pipe.sadd(key, branch_key)
        pipe.scard(key)
        pipe.expire(key, KEEP_AFTER_DEADLINE * 2)
        return int(pipe.execute()[1])

    def branches_done(self, run_id: str) -> int:
        return int(self.redis.scard(self.keys.run_done(run_id)))

    def begin_step(
        self,
        run_id: str,
        step_key: str,
        branch_key: str,
        worker: str,
        queue: str,
        *,
        with_ticket: bool,
    ) -> StepStart:
        """Everything a step needs to start, in one round trip.

        Notes the attempt (2+ is a re-delivery) and where it runs; reads the
        ticket (when asked), whether the run is final, an earlier result of
        this step, and the branch's state (or the run's initial state).
        """
        progress = self.keys.run_progress(run_id)
        pipe = self.redis.pipeline(transaction=False)
        if with_ticket:
            pipe.get(self.keys.run(run_id))
        else:
            pipe.echo("")
        pipe.exists(self.keys.run_final(run_id))
        pipe.hincrby(progress, f"{step_key}:attempts", 1)
        pipe.hset(progress, f"{step_key}:started", json.dumps({"worker": worker, "queue": queue}))
        pipe.expire(progress, KEEP_AFTER_DEADLINE * 2)
        pipe.hget(self.keys.run_results(run_id), step_key)
        pipe.hmget(self.keys.run_states(run_id), [branch_key, "initial"])
        ticket, final, attempts, _, _, result, (state, initial) = pipe.execute()
        return StepStart(
            ticket=RunTicket.from_json(ticket) if ticket else None,
            final=bool(final),
            attempt=int(attempts),
            result=json.loads(result) if result else None,
            state=json.loads(state or initial or "{}"),
        )

    def finish_step(
        self,
        run_id: str,
        step_key: str,
        branch_key: str,
        result: JSON,
        state: JSON,
        handoff: tuple[str, str] | None,
    ) -> tuple[bool, bool]:
        """Record a step's result and state and claim its successor, in one round trip.

        Returns (recorded, handed): recorded is False for a duplicate delivery
        whose twin got there first (then neither its state nor a hand-off is
        written); handed is True when this call claimed the sending of the
        next step (``handoff`` = its step key and queue). Atomic, in Lua.
        """
        next_key, next_queue = handoff if handoff is not None else ("", "")
        recorded, handed = self._finish(
            keys=[
                self.keys.run_results(run_id),
                self.keys.run_states(run_id),
                self.keys.run_progress(run_id),
            ],
            args=[
                step_key,
                json.dumps(result),
                branch_key,
                json.dumps(state),
                KEEP_AFTER_DEADLINE * 2,
                f"{next_key}:queue" if next_key else "",
                json.dumps(next_queue),
            ],
        )
        return bool(recorded), bool(handed)

    def save_prepared(self, run_id: str, step_key: str, prepared: JSON) -> None:
        """Keep a step's state after its pre-request scripts, for the worker that finishes it.

        Stored with the run's states (they hold the same variables), so it
        expires and is deleted with them.
        """
        key = self.keys.run_states(run_id)
        pipe = self.redis.pipeline()
        pipe.hset(key, f"prepared:{step_key}", json.dumps(prepared))
        pipe.expire(key, KEEP_AFTER_DEADLINE * 2)
        pipe.execute()

    def prepared(self, run_id: str, step_key: str) -> JSON | None:
        """What ``save_prepared`` kept for a step (None when nothing was)."""
        raw = self.redis.hget(self.keys.run_states(run_id), f"prepared:{step_key}")
        return json.loads(raw) if raw else None

    def record_step(self, run_id: str, step_key: str, result: JSON) -> bool:
        """Store a step's result once; False when a duplicate delivery already did."""
        key = self.keys.run_results(run_id)
        stored = bool(self.redis.hsetnx(key, step_key, json.dumps(result)))
        self.redis.expire(key, KEEP_AFTER_DEADLINE * 2)
        return stored

    def results(self, run_id: str) -> dict[str, JSON]:
        raw = self.redis.hgetall(self.keys.run_results(run_id))
        return {text(k): json.loads(v) for k, v in raw.items()}

    def progress(self, run_id: str) -> dict[str, Any]:
        raw = self.redis.hgetall(self.keys.run_progress(run_id))
        return {text(k): json.loads(v) for k, v in raw.items()}

    # -- the end --------------------------------------------------------------

    def claim_final(self, run_id: str) -> bool:
        """True for exactly one caller: the one that reports the run."""
        return bool(
            self.redis.set(self.keys.run_final(run_id), "1", nx=True, ex=KEEP_AFTER_DEADLINE * 24)
        )

    def overdue(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        return [text(r) for r in self.redis.zrangebyscore(self.keys.active_runs(), 0, now)]

    def close(self, run_id: str) -> None:
        """Forget a finished run's in-flight state (secrets included)."""
        pipe = self.redis.pipeline()
        pipe.zrem(self.keys.active_runs(), run_id)
        pipe.delete(self.keys.run_states(run_id))
        pipe.expire(self.keys.run_results(run_id), 60)
        pipe.expire(self.keys.run_progress(run_id), 60)
        pipe.expire(self.keys.run_done(run_id), 60)
        pipe.expire(self.keys.run(run_id), 60)
        pipe.execute()
