"""A run's chord as Redis writes: the messages Celery would send, built ahead, sent in batches.

Sending a chord through Celery costs several round trips per run (the chord
size in the result backend, then one publish per header task) and about a
millisecond of Python per run in signatures and kombu. A scheduler that
starts hundreds of runs in the same second cannot afford either. Here the
chord's messages are built once, when the run is prepared, with Celery's own
message builder (``app.amqp.as_task_v2``) and kombu's Redis envelope, and
returned as writes for :mod:`store.launch`, which sends the writes of many
runs in one round trip. A worker cannot tell them from Celery's own: same
protocol-2 headers, the chord callback in every header task, the chord size
in the result backend (``tests/integration/test_publish.py`` compares them
with a chord Celery sent).

Only the Redis broker is supported: that is the only one pmrunner configures.
Celery's publish signals are not sent for these messages; the send time that
pmrunner's own receiver stamps (``worker.queues``) is written when the batch
is sent.
"""

from __future__ import annotations

import base64
import functools
import json
import uuid
from dataclasses import dataclass
from typing import Any

from celery import Celery
from celery.utils.nodenames import anon_nodename

from store.launch import SENT_AT, Op
from tasks.messages import FINALIZE_RUN
from worker.queues import SENT_AT_HEADER, priority_list
from worker.roles import REPORT_PRIORITY

# Stands in for the send time until the batch is sent (JSON-encoded, it is SENT_AT).
SENT_AT_VALUE = json.loads(SENT_AT)

JSON = dict[str, Any]


@dataclass(frozen=True)
class StepMessage:
    """The first step of one branch: a task, its arguments and its queue."""

    task: str
    args: tuple[Any, ...]
    queue: str
    argsrepr: str


@functools.lru_cache(maxsize=1)
def _origin() -> str:
    """What Celery names this process in the ``origin`` header (computed once)."""
    return str(anon_nodename())


def chord_ops(app: Celery, run_id: str, steps: list[StepMessage], control_queue: str) -> list[Op]:
    """The writes that send a run's chord: ``steps`` as header, ``finalize_run`` as callback.

    Parameters:
        app: the Celery app (its result backend names the chord keys).
        run_id: the run, the callback's argument.
        steps: the header, one message per branch.
        control_queue: the callback's queue.
    """
    # The callback's priority travels in its signature: the worker that ends the chord sends it.
    callback = app.signature(
        FINALIZE_RUN, (run_id,), queue=control_queue, priority=REPORT_PRIORITY, immutable=True
    )
    if not steps:
        callback_id = str(uuid.uuid4())
        message = _message(
            app, callback_id, FINALIZE_RUN, (run_id,), control_queue, None, REPORT_PRIORITY
        )
        return [("LPUSHSENT", priority_list(control_queue, REPORT_PRIORITY), message)]
    group_id = str(uuid.uuid4())
    callback.freeze(str(uuid.uuid4()), group_id=group_id, root_id=None)
    chord = dict(callback)
    backend = app.backend
    size_key = _text(backend.get_key_for_group(group_id, ".s"))
    counted_key = _text(backend.get_key_for_group(group_id, ".c"))
    size: Op = ("SET", size_key, str(len(steps)))
    if backend.chord_expires:
        size += ("EX", str(int(backend.chord_expires)))
    ops: list[Op] = [("DEL", counted_key), size]
    for index, step in enumerate(steps):
        message = _message(
            app,
            str(uuid.uuid4()),
            step.task,
            step.args,
            step.queue,
            step.argsrepr,
            group_id=group_id,
            group_index=index,
            chord=chord,
        )
        ops.append(("LPUSHSENT", step.queue, message))
    return ops


def report_push(app: Celery, run_id: str, control_queue: str) -> tuple[str, str]:
    """The list and message that queue ``finalize_run`` of ``run_id`` at the report priority.

    For a worker that leaves a run's report for later: one ``LPUSH`` of this
    message (the ``SENT_AT`` placeholder replaced by the time) took about a
    fifth of the worker's time that ``send_task`` took (py-spy samples of
    ``bench/bench_tick.py``'s workers).

    Parameters:
        app: the Celery app.
        run_id: the run.
        control_queue: the queue of reports.
    """
    # No stored result: the chord's callback, which follows, stores the run's outcome.
    message = _message(
        app,
        str(uuid.uuid4()),
        FINALIZE_RUN,
        (run_id,),
        control_queue,
        None,
        REPORT_PRIORITY,
        ignore_result=True,
    )
    return priority_list(control_queue, REPORT_PRIORITY), message


def _message(
    app: Celery,
    task_id: str,
    task: str,
    args: tuple[Any, ...],
    queue: str,
    argsrepr: str | None,
    priority: int = 0,
    ignore_result: bool | None = None,
    **chord_options: Any,
) -> str:
    """One task message, as kombu's Redis transport stores it in the list of ``priority``.

    ``ignore_result`` True: the worker stores no result for it, whatever the task says.
    """
    registered = app.tasks.get(task)
    if ignore_result is None and registered is not None:
        ignore_result = registered.ignore_result
    headers, properties, body, _ = app.amqp.as_task_v2(
        task_id,
        task,
        args,
        {},
        reply_to=app.thread_oid,
        argsrepr=argsrepr,
        kwargsrepr="{}",
        origin=_origin(),
        # As Celery sends it: the task's own setting where this process knows the task,
        # else None, which leaves it to the worker's task (a False would override it).
        ignore_result=ignore_result,
        **chord_options,
    )
    # Stamped as Celery's publish signal would, with the time the batch is sent.
    headers[SENT_AT_HEADER] = SENT_AT_VALUE
    envelope = {
        "body": base64.b64encode(json.dumps(body).encode()).decode("ascii"),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": {
            **properties,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": priority,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(envelope)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
