"""runtime.http_client connections: errors, timeouts, TLS and proxies, all on loopback."""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

import pytest

from pmrunner.errors import InputError, RequestError
from runtime.http_client import HttpClient, build_ssl_context
from runtime.options import Timeouts, TLSOptions
from runtime.transport import TRUST_VARIABLES
from tests.servers import (
    CLIENT_KEY_PASSPHRASE,
    LoopbackServer,
    TlsMaterial,
    echo_json,
    header_values,
)

# The *_fixture names are fixtures: pytest finds them under the names their decorators give.
from tests.unit.http_client_helpers import (  # noqa: F401
    client_fixture,
    closed_port,
    make_client,
    request_to,
    unique_path,
)

pytest_plugins = ("tests.servers",)
pytestmark = pytest.mark.usefixtures("no_proxy_env")


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


def test_extra_ca_certificates_add_to_the_default_trust(
    https_server: LoopbackServer, tls_material: TlsMaterial, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in TRUST_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    with make_client() as client, pytest.raises(RequestError, match="verification failed"):
        client.send(request_to(https_server.url("/echo")))
    default = build_ssl_context(TLSOptions(), verify=True)
    extended = build_ssl_context(TLSOptions(extra_ca_certs=tls_material.ca_file), verify=True)
    public = {cert["subject"] for cert in ssl.create_default_context().get_ca_certs()}
    assert len(public) > 10
    assert public <= _trusted_subjects(default) <= _trusted_subjects(extended)
    assert len(_trusted_subjects(extended) - _trusted_subjects(default)) == 1


def _trusted_subjects(context: ssl.SSLContext) -> set[Any]:
    inner = getattr(context, "_ctx", context)  # truststore wraps an ssl.SSLContext
    return {cert["subject"] for cert in inner.get_ca_certs()}


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
