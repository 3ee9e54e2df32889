"""Requests, clients and ports shared by the HTTP client tests."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from runtime.exchange import OutgoingRequest
from runtime.http_client import HttpClient
from runtime.options import RunOptions, Timeouts
from runtime.request_builder import build_request


def identity(text: str) -> str:
    return text


def request_to(url: str, **fields: Any) -> OutgoingRequest:
    return build_request({"url": url, **fields}, identity)


def make_client(**options: Any) -> HttpClient:
    options.setdefault("timeouts", Timeouts(request=5000))
    return HttpClient(RunOptions(**options))


@pytest.fixture(name="client")
def client_fixture() -> Iterator[HttpClient]:
    with make_client() as http_client:
        yield http_client


def unique_path() -> str:
    """A path that only one test uses, to find its requests in ``server.seen``."""
    return f"/echo/{uuid.uuid4().hex}"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
