"""Tests for runtime.http_client against real loopback HTTP, HTTPS and proxy servers."""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pmrunner.errors import InputError, RequestError
from runtime.exchange import HttpResponse, OutgoingRequest
from runtime.http_client import HttpClient, build_ssl_context, decode_body
from runtime.options import RunOptions, Timeouts, TLSOptions
from runtime.request_builder import build_request
from tests.servers import (
    CLIENT_KEY_PASSPHRASE,
    ENCODED_PAYLOAD,
    LoopbackServer,
    TlsMaterial,
    echo_json,
    header_values,
)

pytest_plugins = ("tests.servers",)
pytestmark = pytest.mark.usefixtures("no_proxy_env")


def identity(text: str) -> str:
    return text


def request_to(url: str, **fields: Any) -> OutgoingRequest:
    return build_request({"url": url, **fields}, identity)


def make_client(**options: Any) -> HttpClient:
    options.setdefault("timeouts", Timeouts(request=5000))
    return HttpClient(RunOptions(**options))


@pytest.fixture()
def client() -> Iterator[HttpClient]:
    with make_client() as http_client:
        yield http_client


def unique_path() -> str:
    """A path that only one test uses, to find its requests in ``server.seen``."""
    return f"/echo/{uuid.uuid4().hex}"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ------------------------------------------------------------- the wire format


def test_response_fields(client: HttpClient, http_server: LoopbackServer) -> None:
    response = client.send(request_to(http_server.url("/delay/150")))
    assert (response.code, response.reason, response.body) == (200, "OK", b"late")
    assert response.url == http_server.url("/delay/150")
    assert response.response_time_ms >= 150
    assert response.raw_size == 4 and response.history == []


def test_error_status_is_a_response_not_an_error(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    assert client.send(request_to(http_server.url("/status/503"))).code == 503


def test_response_headers_keep_order_and_duplicates(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    response = client.send(request_to(http_server.url("/duplicate-headers")))
    interesting = [(k, v) for k, v in response.headers if k in ("Set-Cookie", "X-Dup")]
    assert interesting == [
        ("Set-Cookie", "a=1; Path=/"),
        ("X-Dup", "one"),
        ("Set-Cookie", "b=2; Path=/"),
        ("X-Dup", "two"),
    ]
    assert response.header_values("x-dup") == ["one", "two"]


def test_system_headers_arrive_and_nothing_else_is_added(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    request = request_to(
        http_server.url("/echo"),
        header=[{"key": "X-Dup", "value": "1"}, {"key": "X-Dup", "value": "2"}],
    )
    echoed = echo_json(client.send(request).body)
    names = [key for key, _ in echoed["headers"]]
    assert names == [
        "X-Dup",
        "X-Dup",
        "User-Agent",
        "Accept",
        "Cache-Control",
        "Postman-Token",
        "Host",
        "Accept-Encoding",
        "Connection",
    ]
    assert header_values(echoed, "X-Dup") == ["1", "2"]
    assert header_values(echoed, "User-Agent") == ["PostmanRuntime/7.43.0"]


def test_disabled_system_headers_are_not_replaced_by_library_defaults(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    request = build_request(
        {"url": http_server.url("/echo")},
        identity,
        behavior={"disabledSystemHeaders": {"user-agent": True, "accept-encoding": True}},
    )
    echoed = echo_json(client.send(request).body)
    assert header_values(echoed, "User-Agent") == []
    assert header_values(echoed, "Accept-Encoding") == []


def test_without_content_length_the_body_is_chunked(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    request = build_request(
        {
            "url": http_server.url("/echo"),
            "method": "POST",
            "body": {"mode": "raw", "raw": "streamed"},
        },
        identity,
        behavior={"disabledSystemHeaders": ["content-length"]},
    )
    echoed = echo_json(client.send(request).body)
    assert header_values(echoed, "Transfer-Encoding") == ["chunked"]
    assert echoed["body"] == b"streamed"


def test_non_latin1_header_value_is_sent_as_utf8(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    request = request_to(http_server.url("/echo"), header=[{"key": "X-Name", "value": "Zoë ✓"}])
    echoed = echo_json(client.send(request).body)
    (received,) = header_values(echoed, "X-Name")
    assert received.encode("latin-1").decode("utf-8") == "Zoë ✓"


def test_header_with_newline_is_a_request_error(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    request = request_to(http_server.url("/echo"), header=[{"key": "X-Bad", "value": "a\r\nb"}])
    with pytest.raises(RequestError, match="header"):
        client.send(request)


# ---------------------------------------------------------------------- signer


class AnsweringSigner:
    """Signs with a first token and answers the /challenge endpoint's 401 once."""

    def __init__(self, new_body: bytes | None = None) -> None:
        self.challenges = 0
        self.new_body = new_body

    def sign(self, request: OutgoingRequest) -> None:
        request.set_header("Authorization", "Test first")
        request.secrets.add("first")
        if self.new_body is not None:
            request.body = self.new_body

    def challenge(self, request: OutgoingRequest, response: HttpResponse) -> bool:
        self.challenges += 1
        if response.code == 401 and response.header("WWW-Authenticate"):
            request.set_header("Authorization", "Test answered")
            return True
        return False


def test_signer_signs_and_answers_a_challenge_once(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    signer = AnsweringSigner()
    request = request_to(http_server.url("/challenge"))
    response = client.send(request, signer=signer)
    assert (response.code, response.body) == (200, b"welcome")
    assert signer.challenges == 1
    assert "first" in request.secrets


def test_unanswered_challenge_returns_the_401(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    signer = AnsweringSigner()
    response = client.send(request_to(http_server.url("/echo")), signer=signer)
    assert response.code == 200 and signer.challenges == 1
    assert header_values(echo_json(response.body), "Authorization") == ["Test first"]


def test_content_length_follows_a_body_changed_by_the_signer(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    request = request_to(http_server.url("/echo"), method="POST", body={"mode": "raw", "raw": "ab"})
    response = client.send(request, signer=AnsweringSigner(new_body=b"a longer body"))
    echoed = echo_json(response.body)
    assert echoed["body"] == b"a longer body"
    assert header_values(echoed, "Content-Length") == ["13"]


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


# ------------------------------------------------------------------- encodings


@pytest.mark.parametrize("coding", ["gzip", "deflate", "deflate-raw", "br", "gzip-br"])
def test_compressed_bodies_are_decoded(
    client: HttpClient, http_server: LoopbackServer, coding: str
) -> None:
    response = client.send(request_to(http_server.url(f"/encoding/{coding}")))
    assert response.body == ENCODED_PAYLOAD
    assert 0 < response.raw_size < len(ENCODED_PAYLOAD)


def test_decode_body_edge_cases() -> None:
    assert decode_body(b"", "gzip") == b""
    assert decode_body(b"plain", None) == b"plain"
    assert decode_body(b"plain", "identity") == b"plain"
    assert decode_body(b"zstd?", "zstd") == b"zstd?"
    assert decode_body(gzip.compress(b"x"), "GZIP") == b"x"
    with pytest.raises(RequestError, match="gzip"):
        decode_body(b"not gzip at all", "gzip")


# -------------------------------------------------------------- errors, timeouts


def test_connection_refused(client: HttpClient) -> None:
    port = closed_port()
    with pytest.raises(RequestError, match=rf"^connect ECONNREFUSED 127\.0\.0\.1:{port}$"):
        client.send(request_to(f"http://127.0.0.1:{port}/"))


def test_read_timeout(http_server: LoopbackServer) -> None:
    with make_client(timeouts=Timeouts(request=300)) as client:
        started = time.monotonic()
        with pytest.raises(RequestError, match=r"^ESOCKETTIMEDOUT$"):
            client.send(request_to(http_server.url("/delay/3000")))
        assert time.monotonic() - started < 2


def test_timeout_covers_a_slow_body(http_server: LoopbackServer) -> None:
    with make_client(timeouts=Timeouts(request=400)) as client:
        started = time.monotonic()
        with pytest.raises(RequestError, match=r"^ESOCKETTIMEDOUT$"):
            client.send(request_to(http_server.url("/drip?chunks=30&interval=100")))
        assert time.monotonic() - started < 2


def test_zero_timeout_means_no_limit(http_server: LoopbackServer) -> None:
    with make_client(timeouts=Timeouts(request=0)) as client:
        assert client.send(request_to(http_server.url("/delay/300"))).body == b"late"


def test_connect_timeout() -> None:
    # A listener whose accept queue is full: the kernel drops new SYNs, so connect hangs.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(8)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            time.sleep(0.1)
            expected = rf"^connect ETIMEDOUT 127\.0\.0\.1:{port}$"
            with (
                make_client(timeouts=Timeouts(request=300)) as client,
                pytest.raises(RequestError, match=expected),
            ):
                client.send(request_to(f"http://127.0.0.1:{port}/"))
        finally:
            for filler in fillers:
                filler.close()


# ------------------------------------------------------------------------- TLS


def test_tls_verification_fails_for_an_unknown_ca(https_server: LoopbackServer) -> None:
    expected = r"certificate verification failed for 127\.0\.0\.1:\d+: .*certificate"
    with make_client() as client, pytest.raises(RequestError, match=expected):
        client.send(request_to(https_server.url("/echo")))


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verification_off_globally_or_per_request(https_server: LoopbackServer) -> None:
    with make_client(tls=TLSOptions(verify=False)) as client:
        assert client.send(request_to(https_server.url("/echo"))).code == 200
        with pytest.raises(RequestError, match="certificate verification failed"):
            client.send(request_to(https_server.url("/echo")), behavior={"strictSSL": True})
    with make_client() as client:
        response = client.send(request_to(https_server.url("/echo")), behavior={"strictSSL": False})
        assert response.code == 200


def test_extra_ca_certificates_are_trusted(
    https_server: LoopbackServer, tls_material: TlsMaterial
) -> None:
    with make_client(tls=TLSOptions(extra_ca_certs=tls_material.ca_file)) as client:
        assert client.send(request_to(https_server.url("/echo"))).code == 200
        localhost = f"https://localhost:{https_server.port}/echo"
        assert client.send(request_to(localhost)).code == 200


def test_extra_ca_certificates_add_to_the_default_bundle(tls_material: TlsMaterial) -> None:
    default = build_ssl_context(TLSOptions(), verify=True).cert_store_stats()["x509_ca"]
    extended = build_ssl_context(TLSOptions(extra_ca_certs=tls_material.ca_file), verify=True)
    assert default > 10
    assert extended.cert_store_stats()["x509_ca"] == default + 1


def test_unreadable_extra_ca_file_is_an_input_error(tmp_path: Any) -> None:
    missing = tmp_path / "missing-ca.pem"
    with pytest.raises(InputError, match=r"missing-ca\.pem"):
        make_client(tls=TLSOptions(extra_ca_certs=missing))


def test_server_requiring_a_client_certificate(
    mtls_server: LoopbackServer, tls_material: TlsMaterial
) -> None:
    without = TLSOptions(extra_ca_certs=tls_material.ca_file)
    with make_client(tls=without) as client, pytest.raises(RequestError):
        client.send(request_to(mtls_server.url("/echo")))
    plain = TLSOptions(
        extra_ca_certs=tls_material.ca_file,
        client_cert=tls_material.client_cert_file,
        client_key=tls_material.client_key_file,
    )
    with make_client(tls=plain) as client:
        assert client.send(request_to(mtls_server.url("/echo"))).code == 200


def test_client_key_with_passphrase(mtls_server: LoopbackServer, tls_material: TlsMaterial) -> None:
    options = TLSOptions(
        extra_ca_certs=tls_material.ca_file,
        client_cert=tls_material.client_cert_file,
        client_key=tls_material.client_encrypted_key_file,
        client_passphrase=CLIENT_KEY_PASSPHRASE,
    )
    with make_client(tls=options) as client:
        assert client.send(request_to(mtls_server.url("/echo"))).code == 200


def test_wrong_client_key_passphrase_is_an_input_error(tls_material: TlsMaterial) -> None:
    options = TLSOptions(
        client_cert=tls_material.client_cert_file,
        client_key=tls_material.client_encrypted_key_file,
        client_passphrase="wrong",
    )
    with pytest.raises(InputError, match="client certificate"):
        make_client(tls=options)


def test_tls_context_without_verification() -> None:
    context = build_ssl_context(TLSOptions(), verify=False)
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname


# ----------------------------------------------------------------------- proxy


def test_http_proxy_from_environment(
    monkeypatch: pytest.MonkeyPatch, http_server: LoopbackServer, proxy_server: LoopbackServer
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy_server.base_url)
    target = http_server.url(unique_path())
    with make_client() as client:
        echoed = echo_json(client.send(request_to(target)).body)
    assert proxy_server.seen == [("GET", target)]
    assert header_values(echoed, "User-Agent") == ["PostmanRuntime/7.43.0"]


def test_https_proxy_tunnels_with_connect(
    monkeypatch: pytest.MonkeyPatch,
    https_server: LoopbackServer,
    proxy_server: LoopbackServer,
    tls_material: TlsMaterial,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy_server.base_url)
    with make_client(tls=TLSOptions(extra_ca_certs=tls_material.ca_file)) as client:
        assert client.send(request_to(https_server.url("/echo"))).code == 200
    assert proxy_server.seen == [("CONNECT", f"127.0.0.1:{https_server.port}")]


def test_no_proxy_bypasses_the_proxy(
    monkeypatch: pytest.MonkeyPatch, http_server: LoopbackServer, proxy_server: LoopbackServer
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy_server.base_url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with make_client() as client:
        assert client.send(request_to(http_server.url("/echo"))).code == 200
    assert proxy_server.seen == []


def test_unreachable_proxy(monkeypatch: pytest.MonkeyPatch, http_server: LoopbackServer) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    with make_client() as client, pytest.raises(RequestError, match=r"^tunneling socket"):
        client.send(request_to(http_server.url("/echo")))


def test_failure_messages_stay_importable_from_the_client() -> None:
    from runtime.http_client import describe_failure

    refused = ConnectionRefusedError(111, "Connection refused")
    message = describe_failure(refused, "http://127.0.0.1:5999/x")
    assert message == "connect ECONNREFUSED 127.0.0.1:5999"
