"""signer_for, parameter shapes and the credential-as-is signers (basic, bearer, apikey, oauth2).

Each signed request goes to a loopback server that checks the credential on
its own terms: it decodes the Basic header, parses the query string, etc.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from pmrunner.errors import CollectionFormatError, UnsupportedAuthError
from runtime.auth import SUPPORTED_TYPES, AuthParams, signer_for
from runtime.auth.urls import request_target
from runtime.exchange import OutgoingRequest
from tests.unit.test_auth_loopback import Received, Reply, loopback_server, send

VARIABLES = {
    "user": "alice",
    "pass": "s3cr3t:with colon ü",
    "token": "tok-123",
    "apikey": "k+y/=&?",
}


def resolve(text: str) -> str:
    """A stand-in for the runtime's substitution: {{name}} from VARIABLES."""
    return re.sub(r"\{\{(\w+)\}\}", lambda m: VARIABLES.get(m.group(1), m.group(0)), text)


def v21(auth_type: str, **params: Any) -> dict[str, Any]:
    """An auth object in the v2.1 shape (a list of key/value entries)."""
    entries = [{"key": k, "value": v, "type": "string"} for k, v in params.items()]
    return {"type": auth_type, auth_type: entries}


def v20(auth_type: str, **params: Any) -> dict[str, Any]:
    """An auth object in the v2.0 shape (a plain object)."""
    return {"type": auth_type, auth_type: dict(params)}


def signed(auth: dict[str, Any], request: OutgoingRequest) -> OutgoingRequest:
    signer = signer_for(auth, resolve)
    assert signer is not None
    signer.sign(request)
    return request


def check_basic(expected_user: str, expected_password: str) -> Any:
    """A server that decodes the Basic header itself and compares the credentials."""

    def respond(received: Received) -> Reply:
        scheme, _, encoded = (received.header("Authorization") or "").partition(" ")
        decoded = base64.b64decode(encoded).decode("utf-8") if encoded else ""
        user, _, password = decoded.partition(":")
        good = scheme == "Basic" and (user, password) == (expected_user, expected_password)
        return (200 if good else 401), [], b""

    return respond


# --- signer_for ---------------------------------------------------------------


@pytest.mark.parametrize("auth", [None, {"type": "noauth"}, {"type": "inherit"}, {}])
def test_no_auth_gives_no_signer(auth: dict[str, Any] | None) -> None:
    assert signer_for(auth, resolve) is None


@pytest.mark.parametrize("auth_type", ["ntlm", "edgegrid", "jwt", "asap", "akamai", "weird"])
def test_unsupported_types_raise_with_the_type_named(auth_type: str) -> None:
    with pytest.raises(UnsupportedAuthError) as raised:
        signer_for(v21(auth_type, username="u"), resolve)
    assert str(raised.value) == f"unsupported auth type '{auth_type}'"


def test_supported_types_are_the_documented_ones() -> None:
    expected = {"basic", "bearer", "apikey", "digest", "oauth1", "oauth2", "hawk", "awsv4"}
    assert expected == SUPPORTED_TYPES


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        (["basic"], "auth must be an object"),
        ({"type": 3}, "auth 'type' must be a string"),
        ({"type": "basic", "basic": "user:pass"}, "auth 'basic': parameters must be a list"),
        ({"type": "basic", "basic": [{"value": "u"}]}, "auth 'basic': parameter 0 must be"),
    ],
)
def test_malformed_auth_objects_raise_clear_errors(auth: Any, message: str) -> None:
    with pytest.raises(CollectionFormatError, match=re.escape(message)):
        signer_for(auth, resolve)


def test_missing_parameters_list_signs_with_empty_values() -> None:
    request = signed({"type": "basic"}, OutgoingRequest("GET", "http://127.0.0.1/"))
    assert request.header("Authorization") == "Basic " + base64.b64encode(b":").decode()


# --- basic ----------------------------------------------------------------------


@pytest.mark.parametrize("shape", [v21, v20])
def test_basic_auth_in_both_shapes_with_variables(shape: Any) -> None:
    auth = shape("basic", username="{{user}}", password="{{pass}}")
    with loopback_server(check_basic("alice", VARIABLES["pass"])) as server:
        request = signed(auth, OutgoingRequest("GET", server.base_url + "/basic"))
        assert send(request).code == 200


def test_basic_auth_replaces_an_existing_authorization_header() -> None:
    request = OutgoingRequest(
        "GET", "http://127.0.0.1/", headers=[("authorization", "Bearer old"), ("X-A", "1")]
    )
    signed(v21("basic", username="u", password="p"), request)
    values = [v for k, v in request.headers if k.lower() == "authorization"]
    assert values == ["Basic " + base64.b64encode(b"u:p").decode()]


def test_wrong_basic_password_is_refused_by_the_server() -> None:
    with loopback_server(check_basic("alice", "right")) as server:
        request = signed(
            v21("basic", username="alice", password="wrong"),
            OutgoingRequest("GET", server.base_url + "/"),
        )
        assert send(request).code == 401


# --- bearer -----------------------------------------------------------------------


def test_bearer_token_is_sent_and_checked() -> None:
    def respond(received: Received) -> Reply:
        good = received.header("Authorization") == "Bearer tok-123"
        return (200 if good else 401), [], b""

    with loopback_server(respond) as server:
        request = signed(v20("bearer", token="{{token}}"), OutgoingRequest("GET", server.base_url))
        assert send(request).code == 200


def test_empty_bearer_token_leaves_the_request_alone() -> None:
    request = signed(v21("bearer", token=""), OutgoingRequest("GET", "http://127.0.0.1/"))
    assert request.headers == []
    assert request.secrets == set()


# --- apikey -------------------------------------------------------------------------


def test_api_key_in_a_header_by_default() -> None:
    def respond(received: Received) -> Reply:
        return (200 if received.header("X-Api-Key") == VARIABLES["apikey"] else 401), [], b""

    with loopback_server(respond) as server:
        request = OutgoingRequest("GET", server.base_url, headers=[("x-api-key", "stale")])
        signed(v21("apikey", key="X-Api-Key", value="{{apikey}}"), request)
        assert [k for k, _ in request.headers] == ["X-Api-Key"]
        assert send(request).code == 200


def test_api_key_in_the_query_is_encoded_and_keeps_other_params() -> None:
    def respond(received: Received) -> Reply:
        expected = [("a", "1"), ("b", "x y"), ("api_key", VARIABLES["apikey"])]
        return (200 if received.query == expected else 400), [], b""

    with loopback_server(respond) as server:
        url = f"{server.base_url}/q?a=1&api_key=old&b=x%20y"
        request = signed(
            v21("apikey", key="api_key", value="{{apikey}}", **{"in": "query"}),
            OutgoingRequest("GET", url),
        )
        assert request.url.endswith("/q?a=1&b=x%20y&api_key=k%2By%2F%3D%26%3F")
        assert send(request).code == 200


def test_api_key_with_neither_key_nor_value_does_nothing() -> None:
    request = signed(v21("apikey", key="", value=""), OutgoingRequest("GET", "http://h/"))
    assert request.headers == []


# --- oauth2 ------------------------------------------------------------------------------


def test_oauth2_token_goes_in_the_header_with_bearer_prefix() -> None:
    def respond(received: Received) -> Reply:
        good = received.header("Authorization") == "Bearer tok-123"
        return (200 if good else 401), [], b""

    with loopback_server(respond) as server:
        request = signed(
            v21("oauth2", accessToken="{{token}}", addTokenTo="header"),
            OutgoingRequest("GET", server.base_url + "/?access_token=stale"),
        )
        assert request.url.endswith("/")
        assert send(request).code == 200


def test_oauth2_custom_header_prefix() -> None:
    request = signed(
        v20("oauth2", accessToken="abc", headerPrefix="Token"),
        OutgoingRequest("GET", "http://127.0.0.1/"),
    )
    assert request.header("Authorization") == "Token abc"


def test_oauth2_token_in_query_params() -> None:
    def respond(received: Received) -> Reply:
        good = received.query == [("x", "1"), ("access_token", "a+b")]
        no_header = received.header("Authorization") is None
        return (200 if good and no_header else 400), [], b""

    with loopback_server(respond) as server:
        request = OutgoingRequest(
            "GET", server.base_url + "/?x=1", headers=[("Authorization", "Bearer stale")]
        )
        signed(v21("oauth2", accessToken="a+b", addTokenTo="queryParams"), request)
        assert send(request).code == 200


def test_oauth2_only_attaches_bearer_tokens() -> None:
    request = signed(
        v21("oauth2", accessToken="abc", tokenType="mac"), OutgoingRequest("GET", "http://h/")
    )
    assert request.header("Authorization") is None


# --- secrets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (
            v21("basic", username="u", password="{{pass}}"),
            {
                VARIABLES["pass"],
                "Basic " + base64.b64encode(f"u:{VARIABLES['pass']}".encode()).decode(),
            },
        ),
        (v21("bearer", token="{{token}}"), {"tok-123", "Bearer tok-123"}),
        (v21("apikey", key="k", value="{{apikey}}"), {VARIABLES["apikey"]}),
        (
            v21("apikey", key="k", value="{{apikey}}", **{"in": "query"}),
            {VARIABLES["apikey"], "k%2By%2F%3D%26%3F"},
        ),
        (v21("oauth2", accessToken="{{token}}"), {"tok-123", "Bearer tok-123"}),
    ],
)
def test_signers_record_the_secrets_they_used(auth: dict[str, Any], expected: set[str]) -> None:
    request = signed(auth, OutgoingRequest("GET", "http://127.0.0.1/"))
    assert expected <= request.secrets
    assert "" not in request.secrets
    assert "u" not in request.secrets  # a user name is not a secret


@pytest.mark.parametrize(
    ("stored", "expected"),
    [(True, True), (False, False), ("true", True), ("FALSE", False), ("", None), (None, None)],
)
def test_yes_no_parameters_accept_booleans_and_words(stored: Any, expected: bool | None) -> None:
    params = AuthParams.from_auth(v21("digest", disableRetryRequest=stored), resolve)
    assert params.flag("disableRetryRequest", default=True) is (
        True if expected is None else expected
    )
    assert params.flag("disableRetryRequest", default=False) is bool(expected)


def test_string_parameters_are_resolved_and_others_kept() -> None:
    params = AuthParams.from_auth(v20("hawk", authId="{{user}}", timestamp=1353832234), resolve)
    assert params.text("authId") == "alice"
    assert params.text("timestamp") == "1353832234"
    assert params.text("missing", "fallback") == "fallback"


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("http://h", "/"),
        ("http://h/a%7Eb/./c?x=%7E&y=a+b#frag", "/a%7Eb/./c?x=%7E&y=a+b"),
        ("http://h/café/a b?q=x y&r=ü", "/caf%C3%A9/a%20b?q=x%20y&r=%C3%BC"),
    ],
)
def test_signed_target_is_the_url_as_sent(url: str, target: str) -> None:
    """Encoded URLs (as the request builder makes them) are signed exactly as they are."""
    assert request_target(url) == target
