"""OAuth 1.0a against a loopback server that collects the parameters from the
request as received (header, query, form body) and verifies the signature
with oauthlib's server-side functions; plus RFC 5849's published example.
"""

from __future__ import annotations

import base64
import hashlib
import time
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, quote

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from oauthlib.common import Request
from oauthlib.oauth1.rfc5849 import signature as oauth_signature

from pmrunner.errors import RequestError, UnsupportedAuthError
from runtime.auth import OAuth1Signer, signer_for
from runtime.exchange import OutgoingRequest
from tests.unit.test_auth_loopback import Received, Reply, loopback_server, send

CONSUMER_KEY, CONSUMER_SECRET = "key-9djdj82h48djs9d2", "secret-j49sk3j29djd"
TOKEN, TOKEN_SECRET = "token-kkk9d7dh3k39sjv7", "tsecret-dh893hdasih9"
FORM = "application/x-www-form-urlencoded"


@cache
def rsa_keys() -> tuple[str, str]:
    """A fresh RSA key pair (private PEM, public PEM), made once per test session."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def verify(received: Received) -> Reply:
    """Collect oauth and request parameters as a provider would, and verify with oauthlib."""
    headers = dict(received.headers)
    is_form = (received.header("Content-Type") or "").startswith(FORM)
    body = received.body.decode() if is_form else None
    params = oauth_signature.collect_parameters(
        uri_query=received.target.partition("?")[2],
        body=body,
        headers=headers,
        exclude_oauth_signature=False,
    )
    found = dict(params)
    request = Request(received.url, received.method, body, headers)
    request.params = [(k, v) for k, v in params if k != "oauth_signature"]
    request.signature = found.get("oauth_signature")
    if "oauth_body_hash" in found and not is_form:
        expected_hash = base64.b64encode(hashlib.sha1(received.body).digest()).decode()
        if found["oauth_body_hash"] != expected_hash:
            return 400, [], b"body hash"
    token_secret = TOKEN_SECRET if found.get("oauth_token") else ""
    method = found.get("oauth_signature_method", "")
    verifiers = {
        "HMAC-SHA1": lambda: oauth_signature.verify_hmac_sha1(
            request, CONSUMER_SECRET, token_secret
        ),
        "HMAC-SHA256": lambda: oauth_signature.verify_hmac_sha256(
            request, CONSUMER_SECRET, token_secret
        ),
        "HMAC-SHA512": lambda: oauth_signature.verify_hmac_sha512(
            request, CONSUMER_SECRET, token_secret
        ),
        "PLAINTEXT": lambda: oauth_signature.verify_plaintext(
            request, CONSUMER_SECRET, token_secret
        ),
        "RSA-SHA1": lambda: oauth_signature.verify_rsa_sha1(request, rsa_keys()[1]),
        "RSA-SHA256": lambda: oauth_signature.verify_rsa_sha256(request, rsa_keys()[1]),
    }
    good = found.get("oauth_consumer_key") == CONSUMER_KEY and verifiers[method]()
    return (200 if good else 401), [], b""


def oauth1(**params: Any) -> dict[str, Any]:
    base = {
        "consumerKey": "{{ck}}",
        "consumerSecret": "{{cs}}",
        "token": TOKEN,
        "tokenSecret": TOKEN_SECRET,
    }
    base.update(params)
    return {"type": "oauth1", "oauth1": [{"key": k, "value": v} for k, v in base.items()]}


def resolve(text: str) -> str:
    return text.replace("{{ck}}", CONSUMER_KEY).replace("{{cs}}", CONSUMER_SECRET)


def signed(auth: dict[str, Any], request: OutgoingRequest) -> OutgoingRequest:
    signer = signer_for(auth, resolve)
    assert signer is not None
    signer.sign(request)
    return request


def test_rfc5849_example() -> None:
    """RFC 5849 section 1.2: the photos.example.net request and its signature."""
    signer = OAuth1Signer(
        consumer_key="dpf43f3p2l4k3l03",
        consumer_secret="kd94hf93k423kf44",
        token="nnch734d00sl2jdk",
        token_secret="pfkkdhi9sl3r4s00",
        timestamp="137131202",
        nonce="chapoH",
        version="",
        realm="Photos",
    )
    request = OutgoingRequest(
        "GET", "http://photos.example.net/photos?file=vacation.jpg&size=original"
    )
    signer.sign(request)
    header = request.header("Authorization") or ""
    assert header.startswith('OAuth realm="Photos", ')
    assert 'oauth_signature="MdpQcU8iPSUjWoN%2FUDMsK2sui9I%3D"' in header
    assert "oauth_version" not in header


@pytest.mark.parametrize(
    "method", ["HMAC-SHA1", "HMAC-SHA256", "HMAC-SHA512", "PLAINTEXT", "RSA-SHA1", "RSA-SHA256"]
)
def test_signature_methods_verified_by_the_server(method: str) -> None:
    auth = oauth1(signatureMethod=method, privateKey=rsa_keys()[0], realm="r")
    with loopback_server(verify) as server:
        url = f"{server.base_url}/photos?size=original&file=vaca%20tion.jpg&empty="
        request = signed(auth, OutgoingRequest("GET", url))
        assert (request.header("Authorization") or "").startswith('OAuth realm="r", ')
        assert send(request).code == 200


def test_unencoded_path_and_query_are_signed_as_sent() -> None:
    with loopback_server(verify) as server:
        request = signed(oauth1(), OutgoingRequest("GET", f"{server.base_url}/café/a b?q=x y&r=ü"))
        assert send(request).code == 200
    assert server.received[0].target == "/caf%C3%A9/a%20b?q=x%20y&r=%C3%BC"


def test_params_in_the_query_string_keep_existing_params() -> None:
    with loopback_server(verify) as server:
        request = signed(
            oauth1(addParamsToHeader=False),
            OutgoingRequest("GET", f"{server.base_url}/r?a=1&b=x%2By"),
        )
        assert request.header("Authorization") is None
        assert send(request).code == 200
    query = server.received[0].query
    assert query[:2] == [("a", "1"), ("b", "x+y")]
    assert {"oauth_signature", "oauth_nonce", "oauth_timestamp"} <= dict(query).keys()


def test_params_in_a_urlencoded_post_body() -> None:
    body = b"name=J%C3%BCrgen&note=a+b%26c"
    with loopback_server(verify) as server:
        request = OutgoingRequest(
            "POST",
            f"{server.base_url}/form?q=1",
            headers=[("Content-Type", FORM), ("Content-Length", str(len(body)))],
            body=body,
            body_mode="urlencoded",
        )
        signed(oauth1(addParamsToHeader="false"), request)
        assert request.body is not None and request.body.startswith(body + b"&oauth_")
        assert request.header("Content-Length") == str(len(request.body))
        assert send(request).code == 200
    form = dict(parse_qsl(server.received[0].body.decode()))
    assert form["name"] == "Jürgen"
    assert "oauth_signature" in form


def test_form_body_params_are_signed_when_oauth_is_in_the_header() -> None:
    with loopback_server(verify) as server:
        request = OutgoingRequest(
            "POST",
            server.base_url + "/form",
            headers=[("Content-Type", FORM)],
            body=b"a=1&b=two%20words",
            body_mode="urlencoded",
        )
        signed(oauth1(includeBodyHash=True), request)
        assert "oauth_body_hash" not in (request.header("Authorization") or "")
        assert send(request).code == 200
        # The same signature over a different body must be refused.
        request.body = b"a=2&b=two%20words"
        assert send(request).code == 401


def test_body_hash_for_a_json_body() -> None:
    body = b'{"hello": "world"}'
    with loopback_server(verify) as server:
        request = OutgoingRequest(
            "PUT",
            server.base_url + "/doc",
            headers=[("Content-Type", "application/json")],
            body=body,
            body_mode="raw",
        )
        signed(oauth1(includeBodyHash=True), request)
        expected = base64.b64encode(hashlib.sha1(body).digest()).decode()
        assert f'oauth_body_hash="{quote(expected, safe="")}"' in (
            request.header("Authorization") or ""
        )
        assert send(request).code == 200
        request.body = b'{"hello": "there"}'
        assert send(request).code == 400  # the server's own body hash no longer matches


def test_empty_params_are_left_out_unless_asked_for() -> None:
    with loopback_server(verify) as server:
        default = signed(oauth1(token="", tokenSecret=""), OutgoingRequest("GET", server.base_url))
        assert "oauth_token" not in (default.header("Authorization") or "")
        assert send(default).code == 200
        with_empty = signed(
            oauth1(token="", tokenSecret="", addEmptyParamsToSign=True),
            OutgoingRequest("GET", server.base_url),
        )
        assert 'oauth_token=""' in (with_empty.header("Authorization") or "")
        assert send(with_empty).code == 200


def test_callback_verifier_and_fixed_values_are_signed() -> None:
    auth = oauth1(
        callback="http://127.0.0.1/cb?x=1",
        verifier="ver-1",
        timestamp=str(int(time.time())),
        nonce="fixed-nonce",
        version="1.0",
    )
    with loopback_server(verify) as server:
        request = signed(auth, OutgoingRequest("GET", server.base_url + "/"))
        header = request.header("Authorization") or ""
        for part in (
            'oauth_callback="http%3A%2F%2F127.0.0.1%2Fcb%3Fx%3D1"',
            'oauth_verifier="ver-1"',
            'oauth_nonce="fixed-nonce"',
            'oauth_version="1.0"',
        ):
            assert part in header
        assert send(request).code == 200


def test_signing_again_replaces_the_earlier_params() -> None:
    signer = signer_for(oauth1(addParamsToHeader=False), resolve)
    assert signer is not None
    request = OutgoingRequest("GET", "http://127.0.0.1/r?a=1")
    signer.sign(request)
    signer.sign(request)
    assert request.url.count("oauth_signature=") == 1
    assert request.url.startswith("http://127.0.0.1/r?a=1&oauth_consumer_key=")


def test_without_consumer_secret_nothing_is_signed() -> None:
    request = signed(oauth1(consumerSecret=""), OutgoingRequest("GET", "http://127.0.0.1/"))
    assert request.headers == []


def test_unsupported_signature_method() -> None:
    with pytest.raises(
        UnsupportedAuthError, match="unsupported oauth1 signature method 'HMAC-MD5'"
    ):
        signer_for(oauth1(signatureMethod="HMAC-MD5"), resolve)


def test_unusable_rsa_key_is_a_clear_request_error() -> None:
    signer = signer_for(oauth1(signatureMethod="RSA-SHA1", privateKey="not a key"), resolve)
    assert signer is not None
    with pytest.raises(RequestError, match="oauth1 RSA-SHA1: 'privateKey' is not a usable RSA"):
        signer.sign(OutgoingRequest("GET", "http://127.0.0.1/"))


def test_oauth1_secrets_are_recorded() -> None:
    request = signed(oauth1(), OutgoingRequest("GET", "http://127.0.0.1/"))
    header = request.header("Authorization") or ""
    signature = dict(parse_qsl(header.replace('"', "").replace(", ", "&")))["oauth_signature"]
    assert {CONSUMER_SECRET, TOKEN_SECRET, TOKEN, signature, header} <= request.secrets
    assert CONSUMER_KEY not in request.secrets
