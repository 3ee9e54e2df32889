"""Worker liveness: heartbeats, and what becomes of a lost worker's steps.

Every worker heartbeats into Redis (``store.workers``) and notes each step
it starts, sends and hands on (the note of a start is written by the same
script that claims the step: no round trip of its own). When its heartbeat lapses
(``PMRUNNER_WORKER_LAPSE``, 15 s by default), the upkeep thread resolves
each step it held, at once and truthfully:

- started, request not sent: sent again;
- request sent with a safe method (GET, HEAD, OPTIONS, TRACE): sent once
  more, and its execution says it is a retry (attempt 2, and why);
- request sent with an unsafe method (POST, PUT, PATCH, DELETE ...):
  reported "outcome unknown: worker X was lost after sending it", never sent
  again unless the run opts in (its monitor's ``resendUnsafe``, its command's
  ``--resend-unsafe``; by default ``PMRUNNER_RESEND_UNSAFE``); the rest of its
  sequence is reported as not run;
- finished, its successor not sent yet: the successor is sent.

A worker killed between taking a message from its queue and starting its
step leaves the message in the broker's unacknowledged set and nothing else;
such a message, older than a lapse, whose step nobody started or holds, is
sent again too (``resolve_orphans``).

A message sent again carries a token, and only the delivery with that token
may run the step: the lost worker's own message, should the broker deliver
it again, is dropped. A worker that was only cut off from Redis and comes
back finds its step taken: noting its request as sent, recording a result
and ending the branch are compare-and-set on the delivery holding the step
(``store.scripts``), so it sends nothing more and writes nothing.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from typing import Any

import redis
from celery import signals

from runtime.results import Execution, ScriptError
from store.keys import text
from store.records import RunTicket, entry_field
from tasks.context import RunContext, Services
from tasks.messages import EXECUTE_REQUEST, describe, step_key

log = logging.getLogger(__name__)
JSON = dict[str, Any]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# kombu's Redis transport keeps delivered, unacknowledged messages here.
UNACKED_HASH, UNACKED_INDEX = "unacked", "unacked_index"
# Messages taken this long before the lapse are looked at; older ones are
# left to the run deadline (the upkeep thread looks every second).
ORPHAN_WINDOW_SECONDS = 300


class Heartbeat:
    """A daemon thread that keeps one worker's ``alive`` key fresh.

    Parameters:
        services: Redis-backed services of the worker's app.
        worker: the worker's node name.
    """

    def __init__(self, services: Services, worker: str) -> None:
        self.services = services
        self.worker = worker
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="pmrunner-heartbeat", daemon=True)

    def start(self) -> None:
        self._beat_once()
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and sign off: a worker that stops cleanly is not lost."""
        self._stop.set()
        try:
            self.services.workers.signed_off(self.worker)
        except redis.RedisError as error:
            log.warning("worker %s could not sign off: %s", self.worker, error)

    def _beat(self) -> None:
        interval = self.services.settings.worker_lapse / 3
        while not self._stop.wait(interval):
            self._beat_once()

    def _beat_once(self) -> None:
        try:
            self.services.workers.heartbeat(self.worker, self.services.settings.worker_lapse)
        except redis.RedisError as error:
            log.warning("worker %s: heartbeat failed (%s); retrying", self.worker, error)


_heartbeats: dict[str, Heartbeat] = {}


@signals.worker_init.connect
def start_heartbeat(sender: Any = None, **_: Any) -> None:
    """Every pmrunner worker heartbeats from the moment it starts."""
    app = getattr(sender, "app", None)
    if app is None or getattr(app, "main", None) != "pmrunner":
        return
    heartbeat = Heartbeat(Services.of(app), str(sender.hostname))
    _heartbeats[heartbeat.worker] = heartbeat
    heartbeat.start()


@signals.worker_shutdown.connect
def stop_heartbeat(sender: Any = None, **_: Any) -> None:
    heartbeat = _heartbeats.pop(str(getattr(sender, "hostname", "")), None)
    if heartbeat is not None:
        heartbeat.stop()


def resolve_lost(services: Services, worker: str) -> int:
    """Resolve every step a lost worker held; return how many were.

    Raises ``redis.RedisError`` (the next upkeep round tries again).
    """
    held = services.workers.held(worker)
    for field, entry in held.items():
        resolve_step(services, worker, entry)
        services.workers.release(worker, field)
    services.workers.forget(worker)
    if held:
        log.warning("worker %s was lost; %d of its steps resolved", worker, len(held))
    return len(held)


def resolve_step(services: Services, worker: str, entry: JSON) -> None:
    """Resolve one step a lost worker held (see the module documentation)."""
    registry = services.registry
    run_id, branch_key, number, _cursor = entry["args"]
    key = step_key(branch_key, number)
    ticket = registry.ticket(run_id)
    if ticket is None or registry.redis.exists(registry.keys.run_final(run_id)):
        return
    _forget_message(services, entry.get("tag"))
    results = registry.results(run_id)
    progress = registry.progress(run_id)
    if entry.get("phase") == "handing":
        successor = entry["next"]
        next_key = step_key(branch_key, number + 1)
        if next_key not in results and f"{next_key}:owner" not in progress:
            note = f"sent on: worker {worker} was lost before it sent this request"
            send_again(services, successor["args"], successor["queue"], note, owner=None)
        return
    if key in results or not _still_held(entry, progress.get(f"{key}:owner")):
        return
    owner = progress.get(f"{key}:owner")
    method = str(progress.get(f"{key}:sent") or "")
    attempts = int(progress.get(f"{key}:attempts") or 0)
    if not method:
        note = f"sent again: worker {worker} was lost before it sent this request"
        send_again(services, entry["args"], entry["queue"], note, owner=owner)
    elif attempts < 2 and (method in SAFE_METHODS or resends_unsafe(services, ticket)):
        note = (
            f"retried: worker {worker} was lost after sending this {method} request;"
            f" it was sent once more"
        )
        send_again(services, entry["args"], entry["queue"], note, owner=owner)
    else:
        _outcome_unknown(services, worker, entry, method)


def resends_unsafe(services: Services, ticket: RunTicket) -> bool:
    """Whether a lost worker's sent unsafe request is sent again: the run's (its monitor's
    or its command's) choice, else the runner's."""
    if ticket.resend_unsafe is not None:
        return ticket.resend_unsafe
    return services.settings.resend_unsafe


def _still_held(entry: JSON, owner: str | None) -> bool:
    """Whether the lost worker's delivery still owns the step (nobody took it over)."""
    if owner is None:
        return entry.get("phase") == "received"
    token = entry.get("token") or ""
    return owner == entry.get("task") or (bool(token) and owner == f"token:{token}")


def send_again(
    services: Services, args: list[Any], queue: str, note: str, *, owner: str | None
) -> bool:
    """Send a step once more; only the delivery with the new token may run it.

    Nothing is sent when the step's holder is no longer ``owner`` (someone took it over).
    """
    token = uuid.uuid4().hex
    run_id, branch_key, number, cursor = args
    if not services.registry.send_again(
        run_id, step_key(branch_key, number), token, note, owner=owner
    ):
        return False
    services.app.send_task(
        EXECUTE_REQUEST,
        (run_id, branch_key, number, cursor),
        {"token": token},
        queue=queue,
        argsrepr=describe(run_id, branch_key, number, "(sent again)"),
        kwargsrepr="{}",
    )
    log.warning("run %s step %s:%s %s", run_id, branch_key, number, note)
    return True


def _outcome_unknown(services: Services, worker: str, entry: JSON, method: str) -> None:
    """Record a sent unsafe request of a lost worker: its outcome is unknown; end its branch."""
    from tasks.run import end_branch  # tasks.run loads the HTTP client and sandbox

    run_id, branch_key, number, cursor = entry["args"]
    ticket = services.registry.ticket(run_id)
    if ticket is None:
        return
    context = RunContext.from_ticket(services, ticket)
    item_id, iteration = context.position(context.branch(branch_key), cursor)
    queue = str(entry.get("queue") or "")
    execution = Execution(
        id=0,
        item_id=item_id,
        item_name=context.item(item_id).name,
        iteration=iteration,
        worker=worker,
        network=queue[4:] if queue.startswith("net.") else None,
    )
    message = (
        f"outcome unknown: worker {worker} was lost after sending it ({method}); not sent again"
    )
    execution.errors.append(ScriptError("request", "OutcomeUnknown", message))
    result = {
        "executions": [execution.to_dict()],
        "next": None,
        "aborted": True,
        "reason": f"was lost with worker {worker} after it was sent (outcome unknown)",
    }
    if services.registry.record_step(run_id, step_key(branch_key, number), result):
        end_branch(services, run_id, branch_key)


def _forget_message(services: Services, tag: object) -> None:
    """Drop the lost worker's unacknowledged message: it must not come back in hours."""
    if not tag:
        return
    pipe = services.registry.redis.pipeline()
    pipe.hdel(UNACKED_HASH, str(tag))
    pipe.zrem(UNACKED_INDEX, str(tag))
    pipe.execute()


def resolve_orphans(services: Services, batch: int = 100) -> int:
    """Send again the steps of messages taken by a worker that died before noting them.

    A message qualifies when it has been unacknowledged for longer than the
    lapse (and less than ``ORPHAN_WINDOW_SECONDS`` more), its step has no
    result and was never started (or was sent again with this message's
    token and never started), and no live worker holds it. Returns how many
    steps were sent again.
    """
    client = services.registry.redis
    newest = time.time() - services.settings.worker_lapse
    oldest = newest - ORPHAN_WINDOW_SECONDS
    taken = client.zrangebyscore(UNACKED_INDEX, oldest, newest, start=0, num=batch)
    resent = 0
    for tag in [text(t) for t in taken]:
        raw = client.hget(UNACKED_HASH, tag)
        step = _step_message(raw) if raw else None
        if step is None or not _orphaned(services, *step):
            continue
        args, token, queue = step
        owner = f"token:{token}" if token else None
        note = "sent again: the worker that took this request was lost before it started it"
        if send_again(services, args, queue, note, owner=owner):
            resent += 1
        _forget_message(services, tag)
    return resent


def _step_message(raw: bytes | str) -> tuple[list[Any], str, str] | None:
    """A step message's arguments, token and queue (None for anything else)."""
    try:
        message, _exchange, queue = json.loads(raw)
        if message.get("headers", {}).get("task") != EXECUTE_REQUEST:
            return None
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args, kwargs, _embed = json.loads(body)
        return list(args), str((kwargs or {}).get("token") or ""), str(queue)
    except (ValueError, KeyError, TypeError):
        return None


def _orphaned(services: Services, args: list[Any], token: str, _queue: str) -> bool:
    registry = services.registry
    run_id, branch_key, number, _cursor = args
    key = step_key(branch_key, number)
    if registry.ticket(run_id) is None or registry.redis.exists(registry.keys.run_final(run_id)):
        return False  # another cluster's run, or one that ended
    if registry.redis.hexists(registry.keys.run_results(run_id), key):
        return False
    owner = registry.progress(run_id).get(f"{key}:owner")
    if owner is not None and owner != f"token:{token}":
        return False
    field = entry_field(run_id, key)
    live = set(services.workers.live())
    return not any(services.workers.holds(worker, field) for worker in live)
