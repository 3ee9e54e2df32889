"""The webhook outbox against a real Redis and a receiver that fails first."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from celery import Celery

from tasks.context import Services
from tasks.outbox import Outbox, deliveries, enqueue
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration


class Receiver(ThreadingHTTPServer):
    """Answers each POST with the next status of ``answers`` (200 once they run out)."""

    def __init__(self, answers: list[int]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers = answers
        self.bodies: list[Any] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.bodies.append(json.loads(body))
        status = self.server.answers.pop(0) if self.server.answers else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture()
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    server = Receiver(list(request.param))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def deliver_until(outbox: Outbox, services: Services, run_id: str, attempts: int) -> None:
    def delivered() -> bool:
        outbox.deliver_due()
        return len(deliveries(services, run_id)) >= attempts

    wait_until(delivered, 30, f"{attempts} delivery attempts")


@pytest.mark.parametrize("receiver", [[500, 503]], indirect=True)
def test_a_failing_receiver_gets_the_notice_again_with_backoff(
    app: Celery, receiver: Receiver
) -> None:
    services = Services.of(app)
    outbox = Outbox(services)
    started = time.monotonic()
    enqueue(services, receiver.url, "run-1", {"event": "monitor.failing"})
    deliver_until(outbox, services, "run-1", 3)
    outbox.close()
    recorded = deliveries(services, "run-1")
    assert [(d["attempt"], d["status"]) for d in recorded] == [(1, 500), (2, 503), (3, 200)]
    assert time.monotonic() - started >= 2 + 4  # backoff: 2 s, then 4 s
    assert receiver.bodies == [{"event": "monitor.failing"}] * 3
    assert services.registry.redis.zcard(services.registry.keys.outbox()) == 0


@pytest.mark.parametrize("receiver", [[410]], indirect=True)
def test_a_refusal_is_final_and_recorded(app: Celery, receiver: Receiver) -> None:
    services = Services.of(app)
    outbox = Outbox(services)
    enqueue(services, receiver.url, "run-2", {"event": "monitor.recovered"})
    deliver_until(outbox, services, "run-2", 1)
    time.sleep(3)
    outbox.deliver_due()
    outbox.close()
    assert [d["status"] for d in deliveries(services, "run-2")] == [410]
    assert len(receiver.bodies) == 1
