"""Digest auth against a loopback server that issues challenges and checks
responses per RFC 7616 with its own code, plus the RFCs' published examples.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.request import parse_http_list, parse_keqv_list

import pytest

from pmrunner.errors import UnsupportedAuthError
from runtime.auth import DigestSigner, signer_for
from runtime.exchange import HttpResponse, OutgoingRequest
from tests.unit.test_auth_loopback import Received, Reply, loopback_server, send

HASHLIB_NAMES = {"MD5": "md5", "SHA-256": "sha256"}


def h(algorithm: str, data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.new(HASHLIB_NAMES[algorithm.removesuffix("-sess")], raw).hexdigest()


@dataclass
class DigestServer:
    """The server side of RFC 7616: challenge, then verify the client's response."""

    username: str = "Mufasa"
    password: str = "Circle of Life"
    realm: str = "testrealm@127.0.0.1"
    algorithm: str = "MD5"
    qop: str = "auth"  # what the challenge offers; empty for an RFC 2069 server
    nonce: str = field(default_factory=lambda: secrets.token_hex(12))
    opaque: str = "5ccc069c403ebaf9f0171e9517f40e41"
    extra_challenges: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def challenge_headers(self) -> list[tuple[str, str]]:
        parts = [f'realm="{self.realm}"', f'nonce="{self.nonce}"', f'opaque="{self.opaque}"']
        if self.qop:
            parts.append(f'qop="{self.qop}"')
        parts.append(f"algorithm={self.algorithm}")
        headers = [("WWW-Authenticate", challenge) for challenge in self.extra_challenges]
        return [*headers, ("WWW-Authenticate", "Digest " + ", ".join(parts))]

    def expected_response(self, fields: dict[str, str], method: str, body: bytes) -> str:
        algorithm = fields.get("algorithm", "MD5")
        a1 = f"{self.username}:{self.realm}:{self.password}"
        if algorithm.endswith("-sess"):
            a1 = f"{h(algorithm, a1)}:{self.nonce}:{fields['cnonce']}"
        qop = fields.get("qop", "")
        a2 = f"{method}:{fields['uri']}"
        if qop == "auth-int":
            a2 += ":" + h(algorithm, body)
        if qop:
            data = f"{h(algorithm, a1)}:{self.nonce}:{fields['nc']}:{fields['cnonce']}:{qop}:"
            return h(algorithm, data + h(algorithm, a2))
        return h(algorithm, f"{h(algorithm, a1)}:{self.nonce}:{h(algorithm, a2)}")

    def __call__(self, received: Received) -> Reply:
        header = received.header("Authorization")
        if not header or not header.startswith("Digest "):
            return 401, self.challenge_headers(), b""
        fields = parse_keqv_list(parse_http_list(header[len("Digest ") :]))
        problems = self._problems(fields, received)
        if problems:
            self.rejected.append("; ".join(problems))
            return 401, self.challenge_headers(), b""
        return 200, [], b"welcome"

    def _problems(self, fields: dict[str, str], received: Received) -> list[str]:
        checks = {
            "username": fields.get("username") == self.username,
            "realm": fields.get("realm") == self.realm,
            "nonce": fields.get("nonce") == self.nonce,
            "opaque": fields.get("opaque") == self.opaque,
            "uri": fields.get("uri") == received.target,
            "algorithm": fields.get("algorithm", "MD5") == self.algorithm,
        }
        if all(checks.values()):
            expected = self.expected_response(fields, received.method, received.body)
            checks["response"] = fields.get("response") == expected
        return [name for name, good in checks.items() if not good]


def identity(text: str) -> str:
    return text


def digest_auth(**params: Any) -> dict[str, Any]:
    return {"type": "digest", "digest": [{"key": k, "value": v} for k, v in params.items()]}


def exchange(signer: Any, request: OutgoingRequest, max_sends: int = 3) -> list[int]:
    """Send, let the signer answer challenges, resend; the status codes seen, in order."""
    signer.sign(request)
    codes = []
    for _ in range(max_sends):
        response: HttpResponse = send(request)
        codes.append(response.code)
        if not signer.challenge(request, response):
            break
    return codes


# --- published examples ---------------------------------------------------------------


def test_rfc2617_example() -> None:
    signer = DigestSigner(
        "Mufasa",
        "Circle Of Life",
        realm="testrealm@host.com",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        opaque="5ccc069c403ebaf9f0171e9517f40e41",
        qop="auth",
        nonce_count="00000001",
        client_nonce="0a4f113b",
    )
    header = signer.authorization("GET", "/dir/index.html")
    assert header == (
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", '
        'algorithm=MD5, qop=auth, nc=00000001, cnonce="0a4f113b", '
        'response="6629fae49393a05397450978507c4ef1", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_examples(algorithm: str, expected: str) -> None:
    signer = DigestSigner(
        "Mufasa",
        "Circle of Life",
        realm="http-auth@example.org",
        nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
        algorithm=algorithm,
        qop="auth",
        nonce_count="00000001",
        client_nonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    assert f'response="{expected}"' in signer.authorization("GET", "/dir/index.html")


# --- the challenge loop against the server -----------------------------------------------


@pytest.mark.parametrize("algorithm", ["MD5", "MD5-sess", "SHA-256", "SHA-256-sess"])
@pytest.mark.parametrize("qop", ["auth", "auth-int", ""])
def test_challenge_then_success(algorithm: str, qop: str) -> None:
    server = DigestServer(algorithm=algorithm, qop=qop)
    with loopback_server(server) as loopback:
        auth = digest_auth(username="{{user}}", password="Circle of Life")
        signer = signer_for(auth, lambda text: text.replace("{{user}}", "Mufasa"))
        request = OutgoingRequest(
            "POST", f"{loopback.base_url}/dir/index.html?a=1&b=two", body=b'{"x": 1}'
        )
        assert exchange(signer, request) == [401, 200], server.rejected
    first, second = loopback.received
    assert first.header("Authorization") is None
    assert (second.header("Authorization") or "").startswith("Digest ")


def test_digest_uri_is_the_target_as_sent() -> None:
    server = DigestServer()
    with loopback_server(server) as loopback:
        signer = DigestSigner("Mufasa", "Circle of Life")
        request = OutgoingRequest("GET", f"{loopback.base_url}/café/a b?q=x y")
        assert exchange(signer, request) == [401, 200], server.rejected
    assert loopback.received[1].target == "/caf%C3%A9/a%20b?q=x%20y"


def test_server_offering_several_qops_gets_auth() -> None:
    server = DigestServer(qop="auth,auth-int")
    with loopback_server(server) as loopback:
        signer = DigestSigner("Mufasa", "Circle of Life")
        codes = exchange(signer, OutgoingRequest("GET", loopback.base_url + "/"))
    assert codes == [401, 200], server.rejected
    assert signer.qop == "auth"


def test_digest_challenge_is_found_among_other_schemes() -> None:
    server = DigestServer(extra_challenges=['Basic realm="other"'])
    with loopback_server(server) as loopback:
        signer = DigestSigner("Mufasa", "Circle of Life")
        assert exchange(signer, OutgoingRequest("GET", loopback.base_url + "/x")) == [401, 200]


def test_known_realm_and_nonce_sign_the_first_request() -> None:
    server = DigestServer(nonce="fixed-nonce")
    with loopback_server(server) as loopback:
        auth = digest_auth(
            username="Mufasa",
            password="Circle of Life",
            realm=server.realm,
            nonce="fixed-nonce",
            opaque=server.opaque,
            qop="auth",
        )
        signer = signer_for(auth, identity)
        assert exchange(signer, OutgoingRequest("GET", loopback.base_url + "/")) == [200]


def test_wrong_password_is_answered_once_only() -> None:
    server = DigestServer()
    with loopback_server(server) as loopback:
        signer = DigestSigner("Mufasa", "wrong password")
        assert exchange(signer, OutgoingRequest("GET", loopback.base_url + "/")) == [401, 401]
    assert server.rejected == ["response"]


def test_disable_retry_request_never_answers() -> None:
    server = DigestServer()
    with loopback_server(server) as loopback:
        auth = digest_auth(username="Mufasa", password="Circle of Life", disableRetryRequest=True)
        signer = signer_for(auth, identity)
        assert exchange(signer, OutgoingRequest("GET", loopback.base_url + "/")) == [401]


def test_a_response_without_a_digest_challenge_is_not_answered() -> None:
    signer = DigestSigner("u", "p")
    request = OutgoingRequest("GET", "http://127.0.0.1/")
    basic_only = HttpResponse(
        401, "Unauthorized", [("WWW-Authenticate", 'Basic realm="x"')], b"", 1
    )
    assert signer.challenge(request, basic_only) is False
    ok = HttpResponse(200, "OK", [], b"", 1)
    assert signer.challenge(request, ok) is False
    assert request.header("Authorization") is None


def test_unsupported_algorithm_is_reported() -> None:
    with pytest.raises(UnsupportedAuthError, match="unsupported digest algorithm 'SHA-1'"):
        signer_for(digest_auth(username="u", password="p", algorithm="SHA-1"), identity)


def test_digest_secrets_are_recorded() -> None:
    signer = DigestSigner("Mufasa", "Circle of Life", realm="r", nonce="n", qop="auth")
    request = OutgoingRequest("GET", "http://127.0.0.1/p?q=1")
    signer.sign(request)
    header = request.header("Authorization")
    assert header is not None
    assert 'uri="/p?q=1"' in header
    assert {"Circle of Life", header} <= request.secrets
