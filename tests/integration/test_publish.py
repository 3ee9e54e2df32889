"""A run's chord built ahead (tasks.publish) is the chord Celery itself sends."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any

import pytest
import redis
from celery import Celery, chord

from store.launch import Launch, Launcher
from tasks.messages import EXECUTE_REQUEST, FINALIZE_RUN
from tasks.publish import StepMessage, chord_ops
from worker.queues import SENT_AT_HEADER
from worker.roles import REPORT_PRIORITY
from worker.settings import Settings

pytestmark = pytest.mark.integration
JSON = dict[str, Any]
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _queued(client: redis.Redis, queue: str) -> list[JSON]:
    """The queue's messages, oldest first, bodies decoded, ids replaced by their order."""
    messages = []
    for raw in reversed(client.lrange(queue, 0, -1)):
        message = json.loads(raw)
        message["body"] = json.loads(base64.b64decode(message["body"]))
        messages.append(message)
    seen: dict[str, str] = {}
    text = _UUID.sub(lambda m: seen.setdefault(m.group(0), f"id{len(seen)}"), json.dumps(messages))
    return list(json.loads(text.replace(queue, "QUEUE")))


def _without_reprs(message: JSON) -> JSON:
    # Celery copies argsrepr/kwargsrepr into the AMQP properties too; no worker reads them there.
    for name in ("argsrepr", "kwargsrepr"):
        message["properties"].pop(name, None)
    # The send time (for the queue-age metric): a time, not the same one.
    sent_at = message["headers"].pop(SENT_AT_HEADER)
    assert abs(sent_at - time.time()) < 30
    return message


def test_prebuilt_chord_messages_are_celerys_own(app: Celery, settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    celery_queue, our_queue = f"{settings.key_prefix}celery", f"{settings.key_prefix}ours"
    branches = [("run-1", f"b{n}", 0, {"index": 0}) for n in range(3)]
    header = [
        app.signature(EXECUTE_REQUEST, args, queue=celery_queue, argsrepr=f"r{n}", kwargsrepr="{}")
        for n, args in enumerate(branches)
    ]
    callback = app.signature(
        FINALIZE_RUN,
        ("run-1",),
        queue=settings.control_queue,
        priority=REPORT_PRIORITY,
        immutable=True,
    )
    try:
        chord(header, callback, app=app).apply_async()
        steps = [
            StepMessage(EXECUTE_REQUEST, args, our_queue, f"r{n}")
            for n, args in enumerate(branches)
        ]
        ops = chord_ops(app, "run-1", steps, settings.control_queue)
        assert Launcher(client).launch([(Launch(ops), None)]) == [1]
        theirs = [_without_reprs(m) for m in _queued(client, celery_queue)]
        ours = [_without_reprs(m) for m in _queued(client, our_queue)]
        assert ours == theirs
        size_key = ops[1][1]  # the chord size, where Celery's Redis backend counts the header
        assert client.get(size_key) == b"3"
        assert 0 < client.ttl(size_key) <= app.backend.chord_expires
    finally:
        client.delete(celery_queue, our_queue)
