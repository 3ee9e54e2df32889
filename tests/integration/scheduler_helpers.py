"""Shared pieces of the scheduler tests: collections, monitors files, a Postman scheduler."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from tasks.context import Services
from tasks.schedule import Scheduler, build_scheduler
from tests.echo_server import serve
from tests.fakes.fake_postman import FakePostman
from worker.app import create_app
from worker.settings import Settings

JSON = dict[str, Any]


def health_collection(name: str, status: int = 200) -> JSON:
    return {
        "info": {"_postman_id": f"coll-{name}", "name": name},
        "item": [
            {
                "name": "health",
                "request": {"method": "GET", "url": "{{baseUrl}}/status/" + str(status)},
                "event": [
                    {
                        "listen": "test",
                        "script": {
                            "exec": ['pm.test("is 200", () => pm.response.to.have.status(200));']
                        },
                    }
                ],
            }
        ],
    }


@pytest.fixture()
def base_url() -> Iterator[str]:
    with serve() as url:
        yield url


def write_monitors(folder: Path, base_url: str, monitors: list[JSON]) -> Path:
    (folder / "env.json").write_text(
        json.dumps({"name": "env", "values": [{"key": "baseUrl", "value": base_url}]})
    )
    lines = ["monitors:"]
    for monitor in monitors:
        lines.append(f"  - {json.dumps(monitor)}")
    path = folder / "monitors.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def runs_of(services: Services, collection_id: str) -> list[JSON]:
    page = services.store.list(collection_id, limit=100)
    return page.runs


def postman_scheduler(
    settings: Settings, postman: FakePostman, **overrides: Any
) -> tuple[Celery, Scheduler]:
    """A scheduler (poller and tick, not started) on ``postman``'s monitors of ws-default."""
    settings = dataclasses.replace(
        settings,
        postman_api_key=postman.api_key,
        postman_base_url=postman.url,
        postman_workspace="ws-default",
        **overrides,
    )
    app = create_app(settings)
    scheduler = build_scheduler(app)
    assert scheduler is not None
    return app, scheduler
