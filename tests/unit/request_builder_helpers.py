"""Variables, a stand-in substitution and a loopback round trip, for the request builder tests."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from runtime.http_client import HttpClient
from runtime.options import RunOptions, Timeouts
from runtime.request_builder import build_request
from tests.servers import LoopbackServer, echo_json

VARIABLES = {
    "host": "api.example.test",
    "baseUrl": "https://api.example.test/v1",
    "id": "42",
    "token": "s3cr3t",
    "name": "Ada Lovelace",
}


def resolve(text: str) -> str:
    """A stand-in for the runner's substitution: {{name}} from VARIABLES, else left as is."""
    return re.sub(r"\{\{([^{}]+)\}\}", lambda m: VARIABLES.get(m.group(1), m.group(0)), text)


@pytest.fixture(name="client")
def client_fixture() -> Iterator[HttpClient]:
    with HttpClient(RunOptions(timeouts=Timeouts(request=5000))) as http_client:
        yield http_client


def send_and_echo(client: HttpClient, server: LoopbackServer, request: dict[str, Any]) -> Any:
    """Build ``request`` against the echo server, send it, return what the server saw."""
    outgoing = build_request({"url": server.url("/echo"), **request}, resolve)
    response = client.send(outgoing)
    assert response.code == 200
    return echo_json(response.body)
