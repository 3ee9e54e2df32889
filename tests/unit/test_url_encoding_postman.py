"""URLs encoded as Postman encodes them, checked against postman-url-encoder and newman.

``POSTMAN_URL_ENCODER`` was produced by postman-url-encoder 3.0.8 itself
(``toNodeUrl(url).href`` for each input, under node). ``NEWMAN_WIRE`` holds
the request lines and Host / Authorization headers that newman 6.2.2 sent to
a raw loopback server for each URL (port 4041 there, the test server's here).
The suite needs neither node nor newman: the values are recorded here.
"""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from runtime.http_client import HttpClient
from runtime.request_builder import build_request, normalize_url
from tests.servers import LoopbackServer
from tests.unit.request_builder_helpers import client_fixture, resolve  # noqa: F401

POSTMAN_URL_ENCODER = [
    (
        "http://localhost/p\"q'r<s>t?a=\"b'c<d>e",
        "http://localhost/p%22q'r%3Cs%3Et?a=%22b%27c%3Cd%3Ee",
    ),
    (
        "http://localhost/pct%zz/50%?v=100%&w=%2a&x=%2A&y=%zz",
        "http://localhost/pct%zz/50%?v=100%&w=%2a&x=%2A&y=%zz",
    ),
    ("http://localhost/get?", "http://localhost/get?"),
    ("http://localhost/get?n=a\nb&m=c\r\nd", "http://localhost/get?n=a%0Ab&m=c%0D%0Ad"),
    (
        "http://localhost/sp ace/{x}|y^z`w?q=sp ace&b={x}|y^z`w",
        "http://localhost/sp%20ace/%7Bx%7D|y^z%60w?q=sp%20ace&b={x}|y^z`w",
    ),
    ('http://localhost/a#frag "x" <y>', "http://localhost/a#frag%20%22x%22%20%3Cy%3E"),
    (
        "http://user:pa:ss@word@localhost:4041/basic",
        "http://user:pa%3Ass%40word@localhost:4041/basic",
    ),
    ("http://127.1:4041/get", "http://127.0.0.1:4041/get"),
    ("http://0x7f.1/get", "http://127.0.0.1/get"),
    ("http://2130706433/get", "http://127.0.0.1/get"),
    ("http://0177.0.0.1/octal", "http://127.0.0.1/octal"),
    ("http://127.0.0.1./trailing-dot", "http://127.0.0.1/trailing-dot"),
    ("http://1/one", "http://0.0.0.1/one"),
    ("http://LOCALHOST/Path", "http://localhost/Path"),
    ("localhost:3000/no-protocol", "http://localhost:3000/no-protocol"),
    ("http://localhost/ünï?q=ü&ü=1", "http://localhost/%C3%BCn%C3%AF?q=%C3%BC&%C3%BC=1"),
    ("http://münchen.example/x", "http://xn--mnchen-3ya.example/x"),
    ("http://localhost/a?b=c=d&e&=f&&g", "http://localhost/a?b=c=d&e&=f&&g"),
    ("http://localhost/a/../b/./c", "http://localhost/a/../b/./c"),
    ("http://localhost/back\\slash?x=\\", "http://localhost/back/slash?x=\\"),
    ("http://localhost/?a=[1]&b=]", "http://localhost/?a=[1]&b=]"),
    (
        "http://localhost/%E2%82%AC?%e2%82%ac=%E2%82%ac",
        "http://localhost/%E2%82%AC?%e2%82%ac=%E2%82%ac",
    ),
    ("http://[::1]:8080/v6", "http://[::1]:8080/v6"),
    ("http://localhost/a?q=a+b&r=a%20b", "http://localhost/a?q=a+b&r=a%20b"),
    ("http://localhost/tab\there?x=\t", "http://localhost/tab%09here?x=%09"),
    ("http://localhost:80/default-port", "http://localhost:80/default-port"),
    ("http://localhost", "http://localhost/"),
    ("http://localhost?x=1", "http://localhost/?x=1"),
    ("http://localhost/semi;colon?x=a;b", "http://localhost/semi;colon?x=a;b"),
    ("http://user@localhost/onlyuser", "http://user@localhost/onlyuser"),
    ("http://:pass@localhost/onlypass", "http://:pass@localhost/onlypass"),
    (
        "http://us er:pä ss@localhost/encoded-userinfo",
        "http://us%20er:p%C3%A4%20ss@localhost/encoded-userinfo",
    ),
    ("  http://localhost/leading-space", "http://localhost/leading-space"),
    ("http://localhost/trailing-space?x=1 ", "http://localhost/trailing-space?x=1%20"),
    ("http://localhost/hash?x=1#a#b", "http://localhost/hash?x=1#a#b"),
    ("http://localhost/a?x=%", "http://localhost/a?x=%"),
]


@pytest.mark.parametrize(("raw", "href"), POSTMAN_URL_ENCODER)
def test_urls_are_encoded_as_postman_url_encoder_does(raw: str, href: str) -> None:
    assert normalize_url(raw) == href


NEWMAN_WIRE = [
    ("/p\"q'r<s>t?a=\"b'c<d>e", "GET /p%22q'r%3Cs%3Et?a=%22b%27c%3Cd%3Ee", None),
    ("/pct%zz/50%?v=100%&w=%2a&x=%2A&y=%zz", "GET /pct%zz/50%?v=100%&w=%2a&x=%2A&y=%zz", None),
    ("/get?", "GET /get?", None),
    ("/get?n={{nl}}", "GET /get?n=a%0Ab%0D%0Ac", None),
    (
        "/sp ace/{x}|y^z`w?q=sp ace&b={x}|y^z`w",
        "GET /sp%20ace/%7Bx%7D|y^z%60w?q=sp%20ace&b={x}|y^z`w",
        None,
    ),
    ("/\u00fcn\u00ef?q=\u00fc&\u00fc=1", "GET /%C3%BCn%C3%AF?q=%C3%BC&%C3%BC=1", None),
    ("/back\\slash?x=\\", "GET /back/slash?x=\\", None),
    ("/?a=[1]&b=]", "GET /?a=[1]&b=]", None),
    ("/tab\there?x=\t", "GET /tab%09here?x=%09", None),
    ("/a?x=%", "GET /a?x=%", None),
    ("/trailing?x=1 ", "GET /trailing?x=1%20", None),
    ("/frag#x y", "GET /frag", None),
]
NEWMAN_USERINFO = [
    ("user:pa:ss@word", "GET /basic", "Basic dXNlcjpwYTpzc0B3b3Jk"),
    ("user", "GET /basic", "Basic dXNlcjo="),
    (":pass", "GET /basic", "Basic OnBhc3M="),
    ("us er:p\u00e4 ss", "GET /basic", "Basic dXMgZXI6cMOkIHNz"),
    ("us%20er:p%C3%A4ss", "GET /basic", "Basic dXMgZXI6cMOkc3M="),
]


class RequestLineRecorder(BaseHTTPRequestHandler):
    """Answers every request with its request line and headers, as received."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        self.server.seen.append((self.requestline, dict(self.headers.items())))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def recorder() -> Iterator[LoopbackServer]:
    server = LoopbackServer(RequestLineRecorder).start()
    yield server
    server.stop()


def sent(
    client: HttpClient, server: LoopbackServer, url: str, **request: object
) -> tuple[str, dict[str, str]]:
    server.seen.clear()
    outgoing = build_request(
        {"url": url, **request}, lambda text: text.replace("{{nl}}", "a\nb\r\nc")
    )
    assert client.send(outgoing).code == 200
    line, headers = server.seen[-1]
    return line.removesuffix(" HTTP/1.1"), headers


@pytest.mark.parametrize(("path", "line", "_"), NEWMAN_WIRE)
def test_the_request_line_is_what_newman_sends(
    client: HttpClient, recorder: LoopbackServer, path: str, line: str, _: None
) -> None:
    assert sent(client, recorder, f"http://127.0.0.1:{recorder.port}{path}")[0] == line


@pytest.mark.parametrize(("userinfo", "line", "authorization"), NEWMAN_USERINFO)
def test_userinfo_is_sent_as_basic_auth_as_newman_does(
    client: HttpClient, recorder: LoopbackServer, userinfo: str, line: str, authorization: str
) -> None:
    got_line, headers = sent(client, recorder, f"http://{userinfo}@127.0.0.1:{recorder.port}/basic")
    assert (got_line, headers["Authorization"], headers["Host"]) == (
        line,
        authorization,
        f"127.0.0.1:{recorder.port}",
    )


def test_an_authorization_header_wins_over_userinfo(
    client: HttpClient, recorder: LoopbackServer
) -> None:
    header = [{"key": "Authorization", "value": "Bearer x"}]
    _, headers = sent(
        client, recorder, f"http://a:b@127.0.0.1:{recorder.port}/explicit", header=header
    )
    assert headers["Authorization"] == "Bearer x"


def test_userinfo_password_is_masked_in_reports() -> None:
    outgoing = build_request({"url": "http://ada:hunter2@h.test/"}, resolve)
    assert outgoing.url == "http://h.test/"
    assert "hunter2" in outgoing.secrets


@pytest.mark.parametrize("host", ["127.1", "0x7f.1", "2130706433", "0177.0.0.1"])
def test_ipv4_shorthands_reach_and_name_the_full_address(
    client: HttpClient, recorder: LoopbackServer, host: str
) -> None:
    line, headers = sent(client, recorder, f"http://{host}:{recorder.port}/get")
    assert (line, headers["Host"]) == ("GET /get", f"127.0.0.1:{recorder.port}")
