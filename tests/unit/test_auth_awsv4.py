"""AWS Signature Version 4 against a loopback server that recomputes the
signature with botocore, plus AWS's published "get-vanilla" test-suite vector.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from runtime.auth import AwsV4Signer, signer_for
from runtime.auth.awsv4 import canonical_uri
from runtime.auth.urls import remove_query_params
from runtime.exchange import OutgoingRequest
from tests.unit.test_auth_loopback import Received, Reply, loopback_server, send

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "session/token+value=="
SCOPE = re.compile(r"^([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request$")
AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<credential>\S+), "
    r"SignedHeaders=(?P<signed>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


def botocore_signature(
    received: Received, url: str, credential: str, signed: str, amz_date: str
) -> tuple[str, str]:
    """(signature, signed header list) as botocore computes them for this request."""
    scope = SCOPE.match(credential)
    assert scope is not None, credential
    access_key, _, region, service = scope.groups()
    assert access_key == ACCESS_KEY
    names = signed.split(";")
    headers = {name: value for name, value in received.headers if name.lower() in names}
    # botocore canonicalises decoded params per the spec; from a raw URL it would take the
    # pairs as they are (it only ever signs URLs it encoded itself).
    path, _, query = url.partition("?")
    params = parse_qsl(query, keep_blank_values=True)
    request = AWSRequest(
        method=received.method, url=path, headers=headers, data=received.body, params=params
    )
    request.context["timestamp"] = amz_date
    token = received.header("X-Amz-Security-Token") or dict(received.query).get(
        "X-Amz-Security-Token"
    )
    auth_class = S3SigV4Auth if service == "s3" else SigV4Auth
    auth = auth_class(Credentials(ACCESS_KEY, SECRET_KEY, token), service, region)
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    return signature, auth.signed_headers(auth.headers_to_sign(request))


def verify_header_auth(received: Received) -> Reply:
    match = AUTHORIZATION.match(received.header("Authorization") or "")
    amz_date = received.header("X-Amz-Date")
    if match is None or amz_date is None:
        return 400, [], b"no SigV4 authorization"
    body_hash = received.header("X-Amz-Content-Sha256")
    if received.body and body_hash != hashlib.sha256(received.body).hexdigest():
        return 400, [], b"payload hash"
    expected, signed = botocore_signature(
        received, received.url, match["credential"], match["signed"], amz_date
    )
    good = match["signature"] == expected and match["signed"] == signed
    return (200 if good else 403), [], b""


def verify_query_auth(received: Received) -> Reply:
    query = dict(received.query)
    unsigned_url = remove_query_params(received.url, ["X-Amz-Signature"])
    expected, signed = botocore_signature(
        received,
        unsigned_url,
        query["X-Amz-Credential"],
        query["X-Amz-SignedHeaders"],
        query["X-Amz-Date"],
    )
    good = query["X-Amz-Signature"] == expected and query["X-Amz-SignedHeaders"] == signed
    return (200 if good else 403), [], b""


def awsv4(**params: Any) -> dict[str, Any]:
    base = {"accessKey": "{{access}}", "secretKey": "{{secret}}"}
    base.update(params)
    return {"type": "awsv4", "awsv4": [{"key": k, "value": v} for k, v in base.items()]}


def resolve(text: str) -> str:
    return text.replace("{{access}}", ACCESS_KEY).replace("{{secret}}", SECRET_KEY)


def signed(auth: dict[str, Any], request: OutgoingRequest) -> OutgoingRequest:
    signer = signer_for(auth, resolve)
    assert signer is not None
    signer.sign(request)
    return request


def test_aws_test_suite_get_vanilla() -> None:
    signer = AwsV4Signer(
        ACCESS_KEY,
        SECRET_KEY,
        region="us-east-1",
        service="service",
        now=lambda: datetime(2015, 8, 30, 12, 36, 0, tzinfo=UTC),
    )
    request = OutgoingRequest("GET", "https://example.amazonaws.com/")
    signer.sign(request)
    assert request.header("X-Amz-Date") == "20150830T123600Z"
    assert request.header("Authorization") == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


@pytest.mark.parametrize(
    "target",
    [
        "/",
        "/items/a%20b/c?z=last&a=first&a=again&empty=&enc=x%2Fy%3Dz",
        "/path/with~tilde/and-dash_under.dot?Key=Value&key=value",
        "/unencoded/café/a b?q=x y&r=ü",
        "/dots/./and/../segments//twice",
    ],
)
def test_get_requests_verified_by_botocore(target: str) -> None:
    with loopback_server(verify_header_auth) as server:
        request = signed(
            awsv4(region="eu-west-1", service="execute-api"),
            OutgoingRequest("GET", server.base_url + target, headers=[("Accept", "*/*")]),
        )
        assert send(request).code == 200


def test_post_with_body_session_token_and_custom_headers() -> None:
    body = b'{"Action": "ListUsers", "Version": "2010-05-08"}'
    with loopback_server(verify_header_auth) as server:
        request = OutgoingRequest(
            "POST",
            server.base_url + "/api",
            headers=[("Content-Type", "application/json"), ("X-Custom", "spaced   value")],
            body=body,
        )
        signed(awsv4(sessionToken=SESSION_TOKEN, service="iam"), request)
        assert request.header("X-Amz-Security-Token") == SESSION_TOKEN
        assert request.header("X-Amz-Content-Sha256") == hashlib.sha256(body).hexdigest()
        match = AUTHORIZATION.match(request.header("Authorization") or "")
        assert match is not None
        signed_headers = match["signed"]
        assert signed_headers == (
            "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token;x-custom"
        )
        assert send(request).code == 200
        request.body = b'{"Action": "DeleteUser"}'
        assert send(request).code == 400  # the body no longer matches its signed hash


def test_s3_signs_the_payload_hash_header() -> None:
    with loopback_server(verify_header_auth) as server:
        request = signed(
            awsv4(service="s3", region="us-west-2"),
            OutgoingRequest("GET", server.base_url + "/bucket/key%20with%20spaces.txt"),
        )
        assert request.header("X-Amz-Content-Sha256") == hashlib.sha256(b"").hexdigest()
        assert send(request).code == 200


def test_auth_data_in_the_query_string() -> None:
    with loopback_server(verify_query_auth) as server:
        request = signed(
            awsv4(addAuthDataToQuery=True, sessionToken=SESSION_TOKEN),
            OutgoingRequest("GET", server.base_url + "/resource?b=2&a=1"),
        )
        assert request.header("Authorization") is None
        assert "X-Amz-Signature=" in request.url
        assert send(request).code == 200


def test_wrong_secret_is_refused() -> None:
    with loopback_server(verify_header_auth) as server:
        request = signed(
            awsv4(secretKey="not-the-secret"), OutgoingRequest("GET", server.base_url + "/")
        )
        assert send(request).code == 403


def test_defaults_are_us_east_1_and_execute_api() -> None:
    request = signed(awsv4(region="", service=""), OutgoingRequest("GET", "http://127.0.0.1/"))
    match = AUTHORIZATION.match(request.header("Authorization") or "")
    assert match is not None
    assert match["credential"].endswith("/us-east-1/execute-api/aws4_request")


def test_signing_again_replaces_the_earlier_auth() -> None:
    signer = signer_for(awsv4(), resolve)
    assert signer is not None
    request = OutgoingRequest("GET", "http://127.0.0.1/")
    signer.sign(request)
    signer.sign(request)
    names = [name.lower() for name, _ in request.headers]
    assert sorted(names) == ["authorization", "x-amz-date"]


@pytest.mark.parametrize(
    "path", ["/", "/a/./b/../c", "//double//slash/", "/a%20b/%7Etilde", "/%C3%A9/x%2Fy"]
)
@pytest.mark.parametrize("service", ["execute-api", "s3"])
def test_canonical_uri_matches_botocore(path: str, service: str) -> None:
    """Paths as the request builder makes them (encoded) are sent as they are."""
    url = "https://example.amazonaws.com" + path
    auth_class = S3SigV4Auth if service == "s3" else SigV4Auth
    auth = auth_class(Credentials(ACCESS_KEY, SECRET_KEY), service, "us-east-1")
    assert canonical_uri(url, service) == auth._normalize_url_path(path)


@pytest.mark.parametrize("service", ["execute-api", "s3"])
def test_empty_path_is_the_root(service: str) -> None:
    assert canonical_uri("https://example.amazonaws.com", service) == "/"


def test_awsv4_secrets_are_recorded() -> None:
    request = signed(awsv4(sessionToken=SESSION_TOKEN), OutgoingRequest("GET", "http://h/"))
    header = request.header("Authorization") or ""
    signature = header.rsplit("Signature=", 1)[1]
    assert {SECRET_KEY, SESSION_TOKEN, header, signature} <= request.secrets
    assert ACCESS_KEY not in request.secrets
