"""``pmrunner run`` sources: files, URLs on a loopback server, and Postman uids."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from pmrunner.cli import fetch_json_url, load_variables, source_of
from pmrunner.errors import InputError
from tests.echo_server import serve
from tests.fakes.fake_postman import FakePostman


class _JsonHandler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, bytes]] = {}

    def do_GET(self) -> None:
        status, body = self.routes.get(self.path.split("?")[0], (404, b"{}"))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def json_server() -> Iterator[str]:
    _JsonHandler.routes = {
        "/collection.json": (200, json.dumps({"info": {"name": "Remote"}, "item": []}).encode()),
        "/list.json": (200, b"[1, 2]"),
        "/text": (200, b"not json"),
    }
    with serve(handler=_JsonHandler) as url:
        yield url


def test_collection_urls_are_fetched(json_server: str) -> None:
    source = source_of(f"{json_server}/collection.json?apikey=k", "collection", None)
    assert source == {"info": {"name": "Remote"}, "item": []}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/missing.json", "cannot fetch collection from {url}/missing.json: HTTP 404"),
        ("/text", "collection at {url}/text is not JSON"),
        ("/list.json", "collection at {url}/list.json is not a JSON object"),
    ],
)
def test_bad_urls_are_clear_errors_without_the_query(
    json_server: str, path: str, message: str
) -> None:
    with pytest.raises(InputError) as caught:
        fetch_json_url(f"{json_server}{path}?apikey=PMAK-hidden", "collection")
    assert str(caught.value) == message.format(url=json_server)


def test_an_unreachable_url_is_a_clear_error() -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(InputError, match=f"cannot fetch collection from http://127.0.0.1:{port}/c"):
        fetch_json_url(f"http://127.0.0.1:{port}/c", "collection")


def test_files_stay_files(tmp_path: Path) -> None:
    existing = tmp_path / "c.json"
    existing.write_text("{}")
    assert source_of(str(existing), "collection", "PMAK-x") == existing
    assert source_of("missing.json", "collection", None) == Path("missing.json")
    assert source_of("missing.json", "collection", "PMAK-x") == Path("missing.json")


def test_uids_are_fetched_from_postman_with_the_api_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FakePostman() as postman:
        monkeypatch.setenv("PMRUNNER_POSTMAN_BASE_URL", postman.url)
        collection_uid = postman.add_collection(name="From Postman")
        environment_uid = postman.add_environment("Staging", {"host": "127.0.0.1"})
        collection = source_of(collection_uid, "collection", postman.api_key)
        environment = source_of(environment_uid, "environment", postman.api_key)
    assert isinstance(collection, dict)
    assert collection["info"]["name"] == "From Postman"
    assert isinstance(environment, dict)
    assert environment["name"] == "Staging"
    assert [(v["key"], v["value"]) for v in environment["values"]] == [("host", "127.0.0.1")]


def test_environments_can_come_from_urls(json_server: str) -> None:
    _JsonHandler.routes["/env.json"] = (200, b'{"name": "Remote", "values": [{"key": "a"}]}')
    environment = load_variables(f"{json_server}/env.json", "environment", None)
    assert environment is not None
    assert (environment.name, environment.values) == ("Remote", [{"key": "a"}])
    _JsonHandler.routes["/bad.json"] = (200, b'{"name": "Remote"}')
    with pytest.raises(InputError, match=r"environment http://127\.0\.0\.1:\d+/bad\.json"):
        load_variables(f"{json_server}/bad.json?k=v", "environment", None)
