"""What the API tests share: the API on a loopback port, its key, a one-monitor setup."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from celery import Celery

from api.app import create_api
from api.server import build_server, listening_socket
from tests.echo_server import serve
from tests.integration.conftest import in_process_worker, wait_until
from worker.settings import Settings

JSON = dict[str, Any]

KEY = "pmr-test-" + uuid.uuid4().hex
AUTH = {"x-api-key": KEY}
MONITOR_UID = "api-smoke"
COLLECTION_ID = "coll-api-smoke"
INVALID_KEY_BODY = {
    "error": {
        "name": "AuthenticationError",
        "message": "Invalid API Key. Every request requires a valid API Key to be sent.",
    }
}


@contextmanager
def served(settings: Settings, *, insecure_no_auth: bool = False) -> Iterator[str]:
    """The API for ``settings`` on a free loopback port, in a thread; yields its base URL."""
    app = create_api(settings, insecure_no_auth=insecure_no_auth)
    sock = listening_socket("127.0.0.1", 0)
    server = build_server(app, trusted_proxies=settings.api_trusted_proxies)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        wait_until(lambda: server.started, timeout=15, what="the API server started")
        assert requests.get(url + "/metrics", timeout=5).status_code == 200
        yield url
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
    assert not thread.is_alive(), "the API server did not stop"


def smoke_collection() -> JSON:
    """Two requests: one passing assertion, one failing (as in the seed's example)."""

    def test(script: str) -> list[JSON]:
        return [{"listen": "test", "script": {"exec": [script]}}]

    return {
        "info": {"_postman_id": COLLECTION_ID, "name": "API smoke"},
        "item": [
            {
                "id": "item-get",
                "name": "Sample GET Request",
                "request": {"method": "GET", "url": "{{baseUrl}}/get"},
                "event": test(
                    'pm.test("Status code is 200", () => pm.response.to.have.status(200));'
                ),
            },
            {
                "id": "item-post",
                "name": "Sample POST Request",
                "request": {
                    "method": "POST",
                    "url": "{{baseUrl}}/post",
                    "header": [{"key": "Content-Type", "value": "application/json"}],
                    "body": {"mode": "raw", "raw": '{"hello": "world"}'},
                },
                "event": test(
                    'pm.test("Status code is 400", () => pm.response.to.have.status(400));'
                ),
            },
        ],
    }


@pytest.fixture(name="echo_url")
def echo_url_fixture() -> Iterator[str]:
    with serve() as url:
        yield url


@pytest.fixture(name="api_settings")
def api_settings_fixture(settings: Settings, tmp_path: Path, echo_url: str) -> Settings:
    """The test's settings with an API key and a monitors.yaml holding one monitor."""
    (tmp_path / "collection.json").write_text(json.dumps(smoke_collection()))
    (tmp_path / "env.json").write_text(
        json.dumps({"name": "env", "values": [{"key": "baseUrl", "value": echo_url}]})
    )
    monitor = {
        "name": "API smoke",
        "uid": MONITOR_UID,
        "collection": "collection.json",
        "environment": "env.json",
        "schedule": {"cron": "0 0 1 1 *"},
    }
    monitors = tmp_path / "monitors.yaml"
    monitors.write_text(f"monitors:\n  - {json.dumps(monitor)}\n")
    return dataclasses.replace(settings, api_key=KEY, monitors_file=monitors)


@pytest.fixture(name="api_url")
def api_url_fixture(app: Celery, api_settings: Settings) -> Iterator[str]:
    with served(api_settings) as url:
        yield url


def worker_for(app: Celery, settings: Settings) -> Any:
    return in_process_worker(app, [settings.queue_for(settings.default_network)])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
