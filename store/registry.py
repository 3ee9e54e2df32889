"""The registry of in-flight runs.

``dispatch`` registers a run with its deadline before sending any task;
request tasks record each step's executions here as they finish (so a run
that ends at its deadline still reports what did run); exactly one
finalizer claims the run; the sweeper finds runs past their deadline.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from store import scripts
from store.collections import CollectionCache
from store.keys import Keys, text
from store.records import RunTicket, StepHolder, StepStart, entry_field
from store.sealing import Sealer, loads

JSON = dict[str, Any]
# In-flight keys outlive the deadline by this much, so a late finalizer or
# sweeper still finds them; then Redis drops them on its own.
KEEP_AFTER_DEADLINE = 3600


def _decoded(field: str, value: bytes | str) -> Any:
    """A progress value: JSON where the field holds JSON, else text."""
    if field.endswith((":started", ":queue", ":attempts")):
        return loads(value)
    return text(value)


class RunRegistry:
    """In-flight runs in Redis."""

    def __init__(
        self, client: redis.Redis, keys: Keys | None = None, sealer: Sealer | None = None
    ) -> None:
        """Parameters:
        client: a Redis client.
        keys: key names.
        sealer: seals tickets (iteration data, options), variable states and
            collection versions (``store.sealing``).
        """
        self.redis = client
        self.keys = keys or Keys()
        self.sealer = sealer or Sealer()
        self._begin = client.register_script(scripts.BEGIN_STEP)
        self._finish = client.register_script(scripts.FINISH_STEP)
        self._sent = client.register_script(scripts.MARK_SENT)
        self._drop = client.register_script(scripts.DROP_MESSAGES)
        self._send_again = client.register_script(scripts.SEND_AGAIN)
        self._collections = CollectionCache(client, self.keys, self.sealer)

    def _seal(self, document: Any) -> str:
        return self.sealer.seal_json(document)

    def _open(self, value: str | bytes) -> Any:
        return self.sealer.open_json(value)

    # -- collections ------------------------------------------------------

    def hold_collection_ops(
        self, digest: str, run_id: str, seconds: float
    ) -> list[tuple[str, ...]]:
        """The writes that hold a collection version for a run (``store.launch``);
        the version's stored text is the batch's blob named by its key."""
        return self._collections.hold_ops(digest, run_id, seconds)

    def seal_collection(self, text: str) -> str:
        """A collection version's canonical text as stored (sealed)."""
        return self.sealer.seal(text)

    def cache_collection(self, collection: JSON, run_id: str, seconds: float) -> str:
        """Cache a collection version for a run (``store.collections``); return its digest."""
        return self._collections.hold(collection, run_id, seconds)

    def release_collection(self, digest: str, run_id: str) -> None:
        """The run is over: its collection version goes once no other run needs it."""
        self._collections.release(digest, run_id)

    def collection(self, digest: str) -> JSON | None:
        return self._collections.get(digest)

    # -- runs ---------------------------------------------------------------

    def register(self, ticket: RunTicket, initial_state: JSON) -> None:
        """Record a run and its initial variable state before any task is sent."""
        ttl = int(max(ticket.deadline - time.time(), 1) + KEEP_AFTER_DEADLINE)
        pipe = self.redis.pipeline()
        pipe.set(self.keys.run(ticket.run_id), self.sealer.seal(ticket.to_json()), ex=ttl)
        pipe.hset(self.keys.run_states(ticket.run_id), "initial", self._seal(initial_state))
        pipe.expire(self.keys.run_states(ticket.run_id), ttl)
        pipe.zadd(self.keys.active_runs(), {ticket.run_id: ticket.deadline})
        pipe.execute()

    def seal_state(self, state: JSON) -> str:
        """A variable state as stored (sealed); runs of one version may share it."""
        return self._seal(state)

    def register_ops(self, ticket: RunTicket, state_blob: str) -> list[tuple[str, ...]]:
        """The writes that register a run (``store.launch``): ticket, state, deadline.
        The sealed initial state is the launch's blob named ``state_blob``."""
        ttl = str(int(max(ticket.deadline - time.time(), 1) + KEEP_AFTER_DEADLINE))
        run_id, states = ticket.run_id, self.keys.run_states(ticket.run_id)
        return [
            ("SET", self.keys.run(run_id), self.sealer.seal(ticket.to_json()), "EX", ttl),
            ("HSETBLOB", states, "initial", state_blob),
            ("EXPIRE", states, ttl),
            ("ZADD", self.keys.active_runs(), repr(float(ticket.deadline)), run_id),
        ]

    def ticket(self, run_id: str) -> RunTicket | None:
        raw = self.redis.get(self.keys.run(run_id))
        return RunTicket.from_json(self.sealer.open(raw)) if raw else None

    def states(self, run_id: str) -> dict[str, JSON]:
        raw = self.redis.hgetall(self.keys.run_states(run_id))
        return {text(k): self._open(v) for k, v in raw.items()}

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
        holder: StepHolder,
        *,
        token: str,
        with_ticket: bool,
        sent: str = "",
    ) -> StepStart:
        """Claim a step for one delivery and read what it needs, in one round trip.

        Only one delivery of a step runs it: the first, or the one sent again
        with ``token`` after its worker was lost. Nothing is written once the
        run is final. ``sent``: the method of the step's request when it goes
        out before anything else runs (no pre-request script); on a first
        attempt (``attempt`` 1) it is noted as ``mark_sent`` would.
        """
        reply = self._begin(
            keys=self._step_keys(run_id, holder.worker, "results", "states"),
            args=[
                step_key,
                branch_key,
                holder.task_id,
                token,
                "1" if with_ticket else "0",
                KEEP_AFTER_DEADLINE * 2,
                json.dumps({"worker": holder.worker, "queue": holder.queue}),
                entry_field(run_id, step_key),
                json.dumps({**holder.entry, "phase": "started"}),
                sent,
                json.dumps({**holder.entry, "phase": "sent", "method": sent}) if sent else "",
            ],
        )
        outcome = text(reply[0])
        if outcome == "final":
            return StepStart(outcome)
        if outcome == "busy":
            return StepStart(outcome, started=loads(reply[1]))
        ticket = RunTicket.from_json(self.sealer.open(reply[1])) if reply[1] else None
        if outcome == "finished":
            return StepStart(outcome, ticket, result=loads(reply[2]), state=self._open(reply[3]))
        return StepStart(
            outcome, ticket, attempt=int(reply[2]), state=self._open(reply[3]), note=text(reply[4])
        )

    def mark_sent(self, run_id: str, step_key: str, method: str, holder: StepHolder) -> bool:
        """Note that the step's request (``method``) goes out; unsafe methods are noted last.

        False when the step is no longer this delivery's (its worker was taken
        for lost, cut off from Redis, and the step resolved meanwhile) or the
        run has ended: then the request must not go out.
        """
        noted = self._sent(
            keys=[
                self.keys.run(run_id),
                self.keys.run_final(run_id),
                self.keys.run_progress(run_id),
                self.keys.worker_steps(holder.worker),
            ],
            args=[
                step_key,
                method,
                KEEP_AFTER_DEADLINE * 2,
                entry_field(run_id, step_key),
                json.dumps({**holder.entry, "phase": "sent", "method": method}),
                holder.task_id,
            ],
        )
        return int(noted) == 1

    def finish_step(
        self,
        run_id: str,
        step_key: str,
        branch_key: str,
        result: JSON,
        state: JSON,
        handoff: tuple[str, str, list[Any]] | None,
        holder: StepHolder,
        inline: StepHolder | None = None,
        sent: str = "",
    ) -> tuple[bool, bool]:
        """Record a step's result and state and claim its successor, in one round trip.

        Returns (recorded, handed): recorded is False for a duplicate delivery
        whose twin got there first, a delivery that no longer holds the step
        (taken over after its worker was taken for lost), or a step of a run
        that already ended (then nothing is written); handed is True when this call claimed the
        sending of the next step (``handoff`` = its step key, queue and
        arguments). A retried call of the same delivery answers the same.

        ``inline``: this worker runs the next step itself, as this holder;
        the call then also begins it (as ``begin_step`` would, attempt 1) and
        handed says that it did. ``sent``: the method of its request, which
        goes out before anything else runs (no pre-request script); noted as
        ``mark_sent`` would, so the step's request needs no call of its own.
        """
        recorded, handed, _ended = self._finish_step(
            run_id, step_key, branch_key, result, state, handoff, holder, inline=inline, sent=sent
        )
        return recorded, handed

    def finish_branch(
        self,
        run_id: str,
        step_key: str,
        branch_key: str,
        result: JSON,
        state: JSON,
        holder: StepHolder,
    ) -> int | None:
        """Record the last step of a branch and note that the branch ended, in one round trip.

        Returns how many of the run's branches have ended, or None when
        nothing was recorded (as ``finish_step``: a twin's result, or the run ended).
        """
        recorded, _handed, ended = self._finish_step(
            run_id, step_key, branch_key, result, state, None, holder, ends_branch=True
        )
        return ended if recorded and ended >= 0 else None

    def _finish_step(
        self,
        run_id: str,
        step_key: str,
        branch_key: str,
        result: JSON,
        state: JSON,
        handoff: tuple[str, str, list[Any]] | None,
        holder: StepHolder,
        *,
        ends_branch: bool = False,
        inline: StepHolder | None = None,
        sent: str = "",
    ) -> tuple[bool, bool, int]:
        next_key, next_queue, next_args = handoff if handoff is not None else ("", "", None)
        entry = ""
        if next_args is not None and inline is None:
            successor = {"args": next_args, "queue": next_queue}
            entry = json.dumps({**holder.entry, "phase": "handing", "next": successor})
        inlined: list[str] = []
        if inline is not None and next_key:
            inlined = [
                inline.task_id,
                json.dumps({"worker": inline.worker, "queue": inline.queue}),
                entry_field(run_id, next_key),
                json.dumps(
                    {**inline.entry, "phase": "sent", "method": sent}
                    if sent
                    else {**inline.entry, "phase": "started"}
                ),
                sent,
            ]
        recorded, handed, ended = self._finish(
            keys=[
                *self._step_keys(run_id, holder.worker, "results", "states", "progress"),
                self.keys.run_done(run_id),
            ],
            args=[
                step_key,
                json.dumps(result),
                branch_key,
                self._seal(state),
                KEEP_AFTER_DEADLINE * 2,
                next_key,
                json.dumps(next_queue),
                holder.task_id,
                entry_field(run_id, step_key),
                entry,
                "1" if ends_branch else "0",
                *inlined,
            ],
        )
        return bool(recorded), bool(handed), int(ended)

    def save_prepared(self, run_id: str, step_key: str, prepared: JSON) -> None:
        """Keep a step's state after its pre-request scripts, for the worker that finishes it.

        Stored with the run's states (they hold the same variables), so it
        expires and is deleted with them.
        """
        key = self.keys.run_states(run_id)
        pipe = self.redis.pipeline()
        pipe.hset(key, f"prepared:{step_key}", self._seal(prepared))
        pipe.expire(key, KEEP_AFTER_DEADLINE * 2)
        pipe.execute()

    def prepared(self, run_id: str, step_key: str) -> JSON | None:
        """What ``save_prepared`` kept for a step (None when nothing was)."""
        raw = self.redis.hget(self.keys.run_states(run_id), f"prepared:{step_key}")
        return self._open(raw) if raw else None

    def handed_on(self, run_id: str, step_key: str, worker: str) -> None:
        """The worker sent the step's successor: it holds the step no more."""
        self.redis.hdel(self.keys.worker_steps(worker), entry_field(run_id, step_key))

    def _step_keys(self, run_id: str, worker: str, *hashes: str) -> list[str]:
        """run, final, then progress or the named hashes, then the worker's steps."""
        named = {
            "results": self.keys.run_results(run_id),
            "states": self.keys.run_states(run_id),
            "progress": self.keys.run_progress(run_id),
        }
        middle = [named[name] for name in hashes]
        if "progress" not in hashes:
            middle.insert(0, self.keys.run_progress(run_id))
        return [
            self.keys.run(run_id),
            self.keys.run_final(run_id),
            *middle,
            self.keys.worker_steps(worker),
        ]

    def record_step(self, run_id: str, step_key: str, result: JSON) -> bool:
        """Store a step's result once; False when one was stored or the run has ended."""
        if self.redis.exists(self.keys.run_final(run_id)):
            return False
        key = self.keys.run_results(run_id)
        pipe = self.redis.pipeline()
        pipe.hsetnx(key, step_key, json.dumps(result))
        pipe.expire(key, KEEP_AFTER_DEADLINE * 2)
        return bool(pipe.execute()[0])

    def send_again(
        self, run_id: str, step_key: str, token: str, note: str, *, owner: str | None
    ) -> bool:
        """Let only the delivery carrying ``token`` run the step; ``note`` says why it was sent.

        Parameters:
            owner: who holds the step now (None: nobody); when that changed
                meanwhile, nothing is written and the answer is False.
        """
        return bool(
            self._send_again(
                keys=[self.keys.run_progress(run_id)],
                args=[step_key, owner or "", token, note, KEEP_AFTER_DEADLINE * 2],
            )
        )

    def results(self, run_id: str) -> dict[str, JSON]:
        raw = self.redis.hgetall(self.keys.run_results(run_id))
        return {text(k): self._open(v) for k, v in raw.items()}

    def results_besides(self, run_id: str, known: set[str]) -> dict[str, JSON]:
        """The step results whose step keys are not in ``known`` (those are not read again)."""
        key = self.keys.run_results(run_id)
        fresh = sorted({text(k) for k in self.redis.hkeys(key)} - known)
        if not fresh:
            return {}
        values = self.redis.hmget(key, fresh)
        return {k: self._open(v) for k, v in zip(fresh, values, strict=True) if v is not None}

    def progress(self, run_id: str) -> dict[str, Any]:
        """Step key fields: ``:started`` and ``:queue`` (JSON), ``:sent``, ``:owner``, ``:note``."""
        raw = self.redis.hgetall(self.keys.run_progress(run_id))
        return {text(k): _decoded(text(k), v) for k, v in raw.items()}

    # -- the end --------------------------------------------------------------

    def claim_final(self, run_id: str) -> bool:
        """True for exactly one caller: the one that reports the run."""
        return bool(
            self.redis.set(self.keys.run_final(run_id), "1", nx=True, ex=KEEP_AFTER_DEADLINE * 24)
        )

    def overdue(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        return [text(r) for r in self.redis.zrangebyscore(self.keys.active_runs(), 0, now)]

    def close(self, run_id: str, queues: list[str] | None = None) -> int:
        """Forget a finished run's in-flight state (secrets at once, the rest in a minute).

        Parameters:
            run_id: the run.
            queues: queues that may still hold messages of the run; they are
                removed, so nothing of the run outlives it in a queue.

        Returns how many waiting messages were removed.
        """
        pipe = self.redis.pipeline()
        pipe.zrem(self.keys.active_runs(), run_id)
        pipe.delete(self.keys.run_states(run_id))
        for key in (
            self.keys.run_results(run_id),
            self.keys.run_progress(run_id),
            self.keys.run_done(run_id),
            self.keys.run(run_id),
        ):
            pipe.expire(key, 60)
        pipe.execute()
        if not queues:
            return 0
        return int(self._drop(keys=sorted(set(queues)), args=[run_id]))
