"""The worker's broker channel files and unfiles unacknowledged messages as kombu does.

``tasks.liveness`` reads kombu's unacknowledged hash and index to find the
messages of a lost worker; the scripted bookkeeping of ``worker.broker``
must write exactly what kombu's transaction writes, and remove it on ack.
"""

from __future__ import annotations

import json
import time
import uuid

from celery import Celery
from kombu import Exchange, Queue

from store.keys import text
from tasks.liveness import UNACKED_HASH, UNACKED_INDEX
from worker.broker import RunChannel, ScriptedQoS


def test_a_delivered_message_is_filed_as_unacknowledged_until_its_ack(app: Celery) -> None:
    name = f"broker-test-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, Exchange(name, type="direct"), routing_key=name)
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        assert isinstance(channel, RunChannel) and isinstance(channel.qos, ScriptedQoS)
        client = channel.kept_client
        try:
            producer = connection.Producer(channel)
            producer.publish({"n": 1}, exchange=queue.exchange, routing_key=name, declare=[queue])
            before = time.time()
            message = queue(channel).get(no_ack=False)
            assert message is not None and message.payload == {"n": 1}
            tag = str(message.delivery_tag)
            filed = client.hget(UNACKED_HASH, tag)
            assert filed is not None
            raw, exchange, routing_key = json.loads(text(filed))
            assert (exchange, routing_key) == (name, name)
            assert raw == json.loads(json.dumps(message._raw))  # the message as it was taken
            score = client.zscore(UNACKED_INDEX, tag)
            assert score is not None and before - 1 <= score <= time.time() + 1
            message.ack()
            assert client.hget(UNACKED_HASH, tag) is None
            assert client.zscore(UNACKED_INDEX, tag) is None
        finally:
            client.delete(name)


def test_a_worker_consumes_through_the_scripted_channel(app: Celery) -> None:
    """Every broker connection of the app (consumer, producers) gets the channel."""
    with app.connection_for_read() as connection:
        assert isinstance(connection.default_channel, RunChannel)
