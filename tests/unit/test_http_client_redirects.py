"""runtime.http_client following redirects and keeping cookies, against a loopback server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pmrunner.errors import InputError, RequestError
from runtime.exchange import HttpResponse, OutgoingRequest
from runtime.http_client import HttpClient
from tests.servers import LoopbackServer, echo_json, header_values

# The *_fixture names are fixtures: pytest finds them under the names their decorators give.
from tests.unit.http_client_helpers import (  # noqa: F401
    client_fixture,
    make_client,
    request_to,
    unique_path,
)

pytest_plugins = ("tests.servers",)
pytestmark = pytest.mark.usefixtures("no_proxy_env")


# ------------------------------------------------------------------- redirects


def redirect_url(server: LoopbackServer, location: str, status: int) -> str:
    return server.url(f"/redirect-to?url={location}&status={status}")


def test_redirects_are_followed_with_history(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    response = client.send(request_to(http_server.url("/redirect/3")))
    assert response.code == 200 and response.url == http_server.url("/echo")
    assert [hop.code for hop in response.history] == [302, 302, 302]
    assert [hop.url for hop in response.history] == [
        http_server.url(f"/redirect/{n}") for n in (3, 2, 1)
    ]


def test_follow_redirects_off_per_request_and_globally(http_server: LoopbackServer) -> None:
    with make_client() as client:
        response = client.send(
            request_to(http_server.url("/redirect/1")), behavior={"followRedirects": False}
        )
        assert response.code == 302 and response.header("Location") == "/echo"
    with make_client(follow_redirects=False) as client:
        response = client.send(
            request_to(http_server.url("/redirect/1")), behavior={"followRedirects": True}
        )
        assert response.code == 302 and response.history == []


def test_max_redirects(client: HttpClient, http_server: LoopbackServer) -> None:
    with pytest.raises(RequestError, match="Exceeded maxRedirects"):
        client.send(request_to(http_server.url("/redirect/3")), behavior={"maxRedirects": 2})
    response = client.send(request_to(http_server.url("/redirect/3")), behavior={"maxRedirects": 3})
    assert response.code == 200


def test_redirect_loop_stops_at_ten(client: HttpClient, http_server: LoopbackServer) -> None:
    before = len(http_server.seen)
    with pytest.raises(RequestError, match=r"redirect loop http://127\.0\.0\.1:\d+/loop"):
        client.send(request_to(http_server.url("/loop")))
    assert len(http_server.seen) - before == 11


def post(url: str) -> OutgoingRequest:
    return request_to(url, method="POST", body={"mode": "raw", "raw": "payload"})


@pytest.mark.parametrize("status", [301, 302, 303])
def test_301_302_303_turn_post_into_get_without_body(
    client: HttpClient, http_server: LoopbackServer, status: int
) -> None:
    response = client.send(post(redirect_url(http_server, "/echo", status)))
    echoed = echo_json(response.body)
    assert (echoed["method"], echoed["body"]) == ("GET", b"")
    assert header_values(echoed, "Content-Type") == []
    assert header_values(echoed, "Content-Length") == []


@pytest.mark.parametrize("status", [307, 308])
def test_307_308_keep_method_and_body(
    client: HttpClient, http_server: LoopbackServer, status: int
) -> None:
    echoed = echo_json(client.send(post(redirect_url(http_server, "/echo", status))).body)
    assert (echoed["method"], echoed["body"]) == ("POST", b"payload")


def test_follow_original_http_method(client: HttpClient, http_server: LoopbackServer) -> None:
    response = client.send(
        post(redirect_url(http_server, "/echo", 302)), behavior={"followOriginalHttpMethod": True}
    )
    echoed = echo_json(response.body)
    assert (echoed["method"], echoed["body"]) == ("POST", b"payload")


def test_head_stays_head_on_redirect(client: HttpClient, http_server: LoopbackServer) -> None:
    path = unique_path()
    client.send(request_to(redirect_url(http_server, path, 302), method="HEAD"))
    assert ("HEAD", path) in http_server.seen


def test_relative_location_is_resolved_against_the_current_url(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    response = client.send(request_to(redirect_url(http_server, "../echo/sub", 302)))
    assert response.url == http_server.url("/echo/sub")


def test_authorization_is_dropped_when_leaving_the_origin(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    other_origin = f"http://localhost:{http_server.port}/echo"
    auth = [{"key": "Authorization", "value": "Bearer t"}]
    same = client.send(request_to(redirect_url(http_server, "/echo", 302), header=auth))
    assert header_values(echo_json(same.body), "Authorization") == ["Bearer t"]
    leaving = client.send(request_to(redirect_url(http_server, other_origin, 302), header=auth))
    echoed = echo_json(leaving.body)
    assert header_values(echoed, "Authorization") == []
    assert header_values(echoed, "Host") == [f"localhost:{http_server.port}"]
    kept = client.send(
        request_to(redirect_url(http_server, other_origin, 302), header=auth),
        behavior={"followAuthorizationHeader": True},
    )
    assert header_values(echo_json(kept.body), "Authorization") == ["Bearer t"]


def test_referer_is_set_on_redirect_unless_removed(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    start = redirect_url(http_server, "/echo", 302)
    echoed = echo_json(client.send(request_to(start)).body)
    assert header_values(echoed, "Referer") == [start]
    echoed = echo_json(
        client.send(request_to(start), behavior={"removeRefererHeaderOnRedirect": True}).body
    )
    assert header_values(echoed, "Referer") == []


# --------------------------------------------------------------------- cookies


def test_cookie_set_by_one_response_is_sent_on_the_next(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    client.send(request_to(http_server.url("/cookies/set?session=abc&theme=dark")))
    response = client.send(request_to(http_server.url("/cookies")))
    assert echo_json_cookie(response) == "session=abc; theme=dark"


def test_cookies_set_during_a_redirect_are_sent_to_the_target(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    response = client.send(request_to(http_server.url("/cookies/set-redirect?hop=1")))
    assert echo_json_cookie(response) == "hop=1"


def test_user_cookie_header_comes_before_the_jar(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    client.send(request_to(http_server.url("/cookies/set?jar=1")))
    request = request_to(http_server.url("/cookies"), header=[{"key": "Cookie", "value": "mine=2"}])
    assert echo_json_cookie(client.send(request)) == "mine=2; jar=1"


def test_cookies_are_exported_and_imported(http_server: LoopbackServer) -> None:
    with make_client() as first:
        first.send(request_to(http_server.url("/cookies/set?carry=over")))
        exported = first.export_cookies()
    assert [(c["key"], c["value"], c["domain"], c["hostOnly"]) for c in exported] == [
        ("carry", "over", "127.0.0.1", True)
    ]
    with make_client() as second:
        second.import_cookies(exported)
        assert (
            echo_json_cookie(second.send(request_to(http_server.url("/cookies")))) == "carry=over"
        )
        assert second.export_cookies() == exported


def test_cookies_for_a_url(client: HttpClient, http_server: LoopbackServer) -> None:
    client.import_cookies(
        [
            {"name": "root", "value": "1", "domain": "127.0.0.1", "path": "/", "hostOnly": True},
            {"name": "deep", "value": "2", "domain": "127.0.0.1", "path": "/api", "hostOnly": True},
            {"name": "tls", "value": "3", "domain": "127.0.0.1", "path": "/", "secure": True},
            {"name": "gone", "value": "4", "domain": "127.0.0.1", "path": "/", "expires": 1},
            {"name": "other", "value": "5", "domain": "example.test", "path": "/"},
        ]
    )
    names = [c["key"] for c in client.cookies_for(f"http://127.0.0.1:{http_server.port}/api/x")]
    assert names == ["deep", "root"]
    assert [c["key"] for c in client.cookies_for("https://127.0.0.1/")] == ["root", "tls"]


def test_import_of_a_bad_cookie_is_an_input_error(client: HttpClient) -> None:
    with pytest.raises(InputError, match="name"):
        client.import_cookies([{"value": "x"}])


def echo_json_cookie(response: HttpResponse) -> Any:
    return json.loads(response.body)["cookie"]
