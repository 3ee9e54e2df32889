"""The egress policy where connections are made, with real HTTP on loopback.

Denied addresses are loopback addresses configured as denied (127.0.0.2, or
all of loopback): nothing here ever addresses a real metadata endpoint. A
listener on the denied address proves that no connection reached it.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from pmrunner.errors import EgressBlockedError, RequestError
from runtime.egress import EgressPolicy, configured_policy
from runtime.egress_transport import egress_session
from runtime.loading import load_collection
from runtime.options import RunOptions, Timeouts
from runtime.runner import run_collection
from tasks.outbox import post_json
from tests.servers import LoopbackServer
from tests.unit.http_client_helpers import make_client, request_to, unique_path
from worker.settings import Settings

pytest_plugins = ("tests.servers",)
pytestmark = pytest.mark.usefixtures("no_proxy_env")

DENIED = "127.0.0.2"
DENY_RULE = f"blocked by egress policy: deny {DENIED} (PMRUNNER_EGRESS_DENY)"
POLICY = configured_policy(deny=[DENIED])


class DeniedListener:
    """A listening socket on the denied address: it counts who connected to it."""

    def __init__(self) -> None:
        self.socket = socket.create_server((DENIED, 0))
        self.socket.setblocking(False)
        self.port = int(self.socket.getsockname()[1])
        self.url = f"http://{DENIED}:{self.port}/secret"

    def connections(self) -> int:
        count = 0
        while True:
            try:
                accepted, _ = self.socket.accept()
            except BlockingIOError:
                return count
            accepted.close()
            count += 1


@pytest.fixture()
def denied() -> Iterator[DeniedListener]:
    listener = DeniedListener()
    yield listener
    listener.socket.close()


@pytest.fixture()
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Answers for ``rebind.test``, one list per lookup (the last repeats); others resolve."""
    answers: list[list[str]] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)
        addresses = answers.pop(0) if len(answers) > 1 else answers[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def test_a_denied_address_is_refused_before_connecting(denied: DeniedListener) -> None:
    with make_client(egress=POLICY) as client, pytest.raises(EgressBlockedError) as refused:
        client.send(request_to(denied.url))
    assert str(refused.value) == DENY_RULE
    assert denied.connections() == 0


def test_a_host_name_that_resolves_to_a_denied_address_is_refused(
    http_server: LoopbackServer,
) -> None:
    policy = configured_policy(deny=["127.0.0.0/8", "::1"])
    path = unique_path()
    with make_client(egress=policy) as client, pytest.raises(RequestError) as refused:
        client.send(request_to(f"http://localhost:{http_server.port}{path}"))
    assert str(refused.value).startswith("blocked by egress policy: deny ")
    assert "(PMRUNNER_EGRESS_DENY)" in str(refused.value)
    assert not [target for _, target in http_server.seen if target == path]


def test_dns_rebinding_connects_only_to_the_address_checked(
    http_server: LoopbackServer, denied: DeniedListener, fake_dns: list[list[str]]
) -> None:
    fake_dns.extend([["127.0.0.1"], [DENIED]])  # allowed when checked, denied ever after
    with make_client(egress=POLICY) as client:
        response = client.send(request_to(f"http://rebind.test:{http_server.port}/echo"))
    assert response.code == 200
    fake_dns[:] = [[DENIED]]
    with make_client(egress=POLICY) as client, pytest.raises(EgressBlockedError, match=DENIED):
        client.send(request_to(f"http://rebind.test:{denied.port}/"))
    assert denied.connections() == 0


def test_a_name_with_denied_and_allowed_addresses_uses_the_allowed_one(
    http_server: LoopbackServer, fake_dns: list[list[str]]
) -> None:
    fake_dns.append([DENIED, "127.0.0.1"])
    with make_client(egress=POLICY) as client:
        assert client.send(request_to(f"http://rebind.test:{http_server.port}/echo")).code == 200


def test_a_redirect_into_a_denied_range_is_refused(
    http_server: LoopbackServer, denied: DeniedListener
) -> None:
    start = http_server.url(f"/redirect-to?url={denied.url}&status=302")
    with make_client(egress=POLICY) as client, pytest.raises(EgressBlockedError, match=DENIED):
        client.send(request_to(start))
    assert denied.connections() == 0


def _run(request_url: str, test_script: str, policy: EgressPolicy) -> Any:
    collection = load_collection(
        {
            "info": {"name": "egress", "schema": "v2.1.0"},
            "item": [
                {
                    "name": "one",
                    "request": {"method": "GET", "url": request_url},
                    "event": [{"listen": "test", "script": {"exec": [test_script]}}],
                }
            ],
        }
    )
    options = RunOptions(timeouts=Timeouts(request=5000), egress=policy)
    return run_collection(collection, options=options)


def test_a_refused_request_fails_in_its_execution(denied: DeniedListener) -> None:
    run = _run(denied.url, "", POLICY)
    (execution,) = run.executions
    assert [(error.kind, error.message) for error in execution.errors] == [("request", DENY_RULE)]
    assert denied.connections() == 0


def test_pm_send_request_is_held_to_the_policy(
    http_server: LoopbackServer, denied: DeniedListener
) -> None:
    script = f"""
    pm.sendRequest("{denied.url}", (err, res) => {{
        pm.test("refused", () => pm.expect(err.message).to.include("blocked by egress policy"));
    }});"""
    run = _run(http_server.url("/echo"), script, POLICY)
    assertions = [(a.name, a.passed) for e in run.executions for a in e.assertions]
    assert assertions == [("refused", True)]
    assert denied.connections() == 0


def test_a_webhook_to_a_denied_address_is_not_sent(
    denied: DeniedListener, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tasks.outbox"):
        post_json(denied.url, {"event": "test"}, Settings(egress_deny=(DENIED,)))
    assert denied.connections() == 0
    assert DENY_RULE in caplog.text


def test_sessions_for_the_postman_api_and_webhooks_enforce_the_policy(
    denied: DeniedListener,
) -> None:
    with egress_session(POLICY) as session, pytest.raises(EgressBlockedError):
        session.get(denied.url, timeout=5)
    assert denied.connections() == 0


def test_the_egress_proxy_carries_every_request(
    http_server: LoopbackServer, proxy_server: LoopbackServer, denied: DeniedListener
) -> None:
    policy = configured_policy(deny=[DENIED], proxy=proxy_server.base_url)
    path = unique_path()
    with make_client(egress=policy) as client:
        assert client.send(request_to(http_server.url(path))).code == 200
        with pytest.raises(EgressBlockedError):
            client.send(request_to(denied.url))
    assert [target for _, target in proxy_server.seen] == [http_server.url(path)]
    assert denied.connections() == 0
