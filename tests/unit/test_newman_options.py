"""newman's output and state options on ``pmrunner run``: --silent, --reporter-cli-no-*,
--cookie-jar, --export-cookie-jar, --export-collection; response sizes as newman counts them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.reporters.json_report import newman_response_size
from runtime.results import ResponseRecord
from tests.echo_server import serve
from tests.unit.cli_options_helpers import invoke, single_error_line, write


@pytest.fixture()
def echo() -> Iterator[str]:
    with serve() as url:
        yield url


def collection(base: str) -> dict[str, object]:
    test = [
        'pm.test("status is 200", () => pm.response.to.have.status(200));',
        'pm.collectionVariables.set("seen", pm.response.json().cookies.session || "none");',
    ]
    return {
        "info": {"_postman_id": "newman-options", "name": "Newman options"},
        "variable": [{"key": "seen", "value": "nothing yet"}],
        "item": [
            {
                "name": "Cookies",
                "request": {"method": "GET", "url": f"{base}/cookies"},
                "event": [{"listen": "test", "script": {"exec": test}}],
            },
            {
                "name": "Set a cookie",
                "request": {"method": "GET", "url": f"{base}/cookies/set?k=v"},
            },
            {
                "name": "Missing",
                "request": {"method": "GET", "url": f"{base}/status/404"},
                "event": [
                    {
                        "listen": "test",
                        "script": {
                            "exec": ['pm.test("found", () => pm.response.to.have.status(200));']
                        },
                    }
                ],
            },
        ],
    }


def test_silent_prints_nothing_and_still_fails_the_run(echo: str, tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", collection(echo))
    result = invoke("run", str(path), "--silent")
    assert result.exit_code == 1
    assert result.output == ""


def test_cli_sections_can_be_left_out(echo: str, tmp_path: Path) -> None:
    path = str(write(tmp_path / "c.json", collection(echo)))
    full = invoke("run", path).output
    assert full.startswith("pmrunner\n")
    assert "total run duration" in full and "AssertionError" in full
    bare = invoke(
        "run",
        path,
        "--reporter-cli-no-banner",
        "--reporter-cli-no-summary",
        "--reporter-cli-no-failures",
    ).output
    assert bare.startswith("Newman options\n")
    assert "total run duration" not in bare
    assert "AssertionError" not in bare
    assert "1. found" in bare  # the request lines stay


def test_cookie_jar_in_and_out_and_the_collection_exported(echo: str, tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", collection(echo))
    host = echo.split("//", 1)[1].split(":", 1)[0]
    jar = write(
        tmp_path / "jar.json",
        {
            "version": "tough-cookie@4.1.3",
            "cookies": [
                {
                    "key": "session",
                    "value": "from-the-jar",
                    "domain": host,
                    "path": "/",
                    "hostOnly": True,
                }
            ],
        },
    )
    out_jar, out_collection = tmp_path / "out" / "jar.json", tmp_path / "out" / "coll.json"
    result = invoke(
        "run",
        str(path),
        "--cookie-jar",
        str(jar),
        "--export-cookie-jar",
        str(out_jar),
        "--export-collection",
        str(out_collection),
    )
    assert result.exit_code == 1, result.output  # the 404 fails on purpose
    exported = json.loads(out_collection.read_text())
    assert exported["info"]["name"] == "Newman options"
    assert {"key": "seen", "value": "from-the-jar"}.items() <= exported["variable"][0].items()
    cookies = json.loads(out_jar.read_text())
    assert cookies["version"].startswith("tough-cookie@")
    assert {(c["key"], c["value"]) for c in cookies["cookies"]} == {
        ("session", "from-the-jar"),
        ("k", "v"),
    }
    # The exported jar starts the next run.
    again = invoke(
        "run", str(path), "--cookie-jar", str(out_jar), "--export-collection", str(out_collection)
    )
    assert json.loads(out_collection.read_text())["variable"][0]["value"] == "from-the-jar"
    assert again.exit_code == 1


def test_state_exports_need_a_local_run(tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", collection("http://127.0.0.1:9"))
    line = single_error_line(
        invoke("run", str(path), "--distributed", "--export-cookie-jar", "jar.json")
    )
    assert "--export-cookie-jar applies to runs in this process" in line
    line = single_error_line(invoke("run", str(path), "--cookie-jar", str(tmp_path / "no.json")))
    assert "--cookie-jar: no such file" in line


def test_response_size_counts_status_line_headers_and_body_as_newman_does() -> None:
    # postman-collection's Response.size(): "HTTP/X.X 200 OK\r\n\r\n" (19) + headers + body.
    headers = [("Content-Type", "application/json"), ("Content-Length", "11")]
    response = ResponseRecord(code=200, status="OK", headers=headers, body="{}", size=2)
    header_bytes = len("Content-Type: application/json\r\n") + len("Content-Length: 11\r\n")
    assert newman_response_size(response) == 19 + header_bytes + 11  # Content-Length wins
    bare = ResponseRecord(code=503, status="", headers=[], body="down", size=4)
    assert newman_response_size(bare) == len("HTTP/X.X 503 Service Unavailable\r\n\r\n") + 4


def test_cli_line_shows_the_newman_size(echo: str, tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", collection(echo))
    output = invoke("run", str(path), "--reporter-cli-no-summary").output
    line = next(line for line in output.splitlines() if "/status/404 [" in line)
    size = int(line.split(", ")[1].removesuffix("B"))
    assert size > 100  # status line and headers counted, not just the small body
