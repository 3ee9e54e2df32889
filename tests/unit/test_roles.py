"""Queues by role, liveness settings, and the client that notes what a step sent."""

from __future__ import annotations

import pytest
from celery import Celery

from pmrunner.errors import ConfigurationError
from runtime.exchange import OutgoingRequest
from runtime.options import RunOptions
from tasks.tracked_client import TrackedClient
from tests.servers import LoopbackServer
from worker.app import create_app
from worker.roles import consume_control_queue, control_routes
from worker.settings import Settings

pytest_plugins = ("tests.servers",)


def test_bookkeeping_goes_to_the_control_queue_of_the_prefix() -> None:
    settings = Settings(key_prefix="corp:")
    assert settings.control_queue == "corp:control"
    routes = control_routes(settings)
    assert routes["pmrunner.finalize_run"] == {"queue": "corp:control", "priority": 9}
    assert "pmrunner.execute_request" not in routes


def test_every_worker_consumes_the_control_queue_whatever_its_queues() -> None:
    app = create_app(Settings(key_prefix="corp:"))
    app.amqp.queues.select(["net.a"])

    class Starting:
        def __init__(self, app: Celery) -> None:
            self.app = app

    consume_control_queue(Starting(app))
    assert set(app.amqp.queues.consume_from) == {"net.a", "corp:control"}


def test_liveness_settings_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "PMRUNNER_WORKER_LAPSE": "5",
            "PMRUNNER_REDIS_RETRY_SECONDS": "120",
            "PMRUNNER_RESEND_UNSAFE": "true",
        }
    )
    assert (settings.worker_lapse, settings.redis_retry_seconds) == (5.0, 120.0)
    assert settings.resend_unsafe is True
    assert Settings.from_env(Settings().to_env()).resend_unsafe is False
    with pytest.raises(ConfigurationError, match="PMRUNNER_RESEND_UNSAFE"):
        Settings.from_env({"PMRUNNER_RESEND_UNSAFE": "perhaps"})


def test_a_step_notes_its_first_send_and_an_unsafe_one_after_a_safe_one(
    http_server: LoopbackServer,
) -> None:
    noted: list[str] = []
    client = TrackedClient(RunOptions())
    client.begin_step(lambda request: noted.append(request.method))
    for method in ("GET", "GET", "POST", "PUT"):
        client.send(OutgoingRequest(method, http_server.url("/echo"), []))
    assert noted == ["GET", "POST"]
    client.begin_step(None)
    client.send(OutgoingRequest("DELETE", http_server.url("/echo"), []))
    assert noted == ["GET", "POST"]
    client.close()
