"""Hawk against a loopback server that authenticates with mohawk's Receiver,
plus the example from the Hawk specification's documentation.
"""

from __future__ import annotations

import time
from typing import Any

import mohawk
import pytest
from mohawk.exc import HawkFail

from pmrunner.errors import UnsupportedAuthError
from runtime.auth import HawkSigner, signer_for
from runtime.exchange import OutgoingRequest
from tests.unit.test_auth_loopback import Received, Reply, loopback_server, send

CREDENTIALS = {
    "dh37fgj492je": {
        "id": "dh37fgj492je",
        "key": "werxhqb98rpaxn39848xrunpaw3489ruxnpa98w4rxn",
        "algorithm": "sha256",
    },
    "sha1-id": {"id": "sha1-id", "key": "another key", "algorithm": "sha1"},
}
EXAMPLE_KEY = CREDENTIALS["dh37fgj492je"]["key"]


def receiver(require_payload_hash: bool) -> Any:
    """A server that authenticates the request with mohawk, as a Hawk provider would."""

    def respond(received: Received) -> Reply:
        try:
            mohawk.Receiver(
                CREDENTIALS.__getitem__,
                received.header("Authorization"),
                received.url,
                received.method,
                content=received.body,
                content_type=received.header("Content-Type") or "",
                accept_untrusted_content=not require_payload_hash,
            )
        except HawkFail as failure:
            return 401, [], repr(failure).encode()
        return 200, [], b""

    return respond


def hawk(**params: Any) -> dict[str, Any]:
    return {"type": "hawk", "hawk": [{"key": k, "value": v} for k, v in params.items()]}


def signed(auth: dict[str, Any], request: OutgoingRequest) -> OutgoingRequest:
    signer = signer_for(auth, lambda text: text.replace("{{hawk_id}}", "dh37fgj492je"))
    assert signer is not None
    signer.sign(request)
    return request


def test_documented_example_without_payload() -> None:
    signer = HawkSigner(
        "dh37fgj492je",
        EXAMPLE_KEY,
        timestamp="1353832234",
        nonce="j4h3g2",
        ext="some-app-ext-data",
    )
    request = OutgoingRequest("GET", "http://example.com:8000/resource/1?b=1&a=2")
    signer.sign(request)
    assert request.header("Authorization") == (
        'Hawk id="dh37fgj492je", ts="1353832234", nonce="j4h3g2", '
        'ext="some-app-ext-data", mac="6R4rV5iE+NPoym+WwjeHzjAGXUtLNIxmo1vpMofpLAE="'
    )


def test_documented_example_with_payload() -> None:
    signer = HawkSigner(
        "dh37fgj492je",
        EXAMPLE_KEY,
        timestamp="1353832234",
        nonce="j4h3g2",
        ext="some-app-ext-data",
        include_payload_hash=True,
    )
    request = OutgoingRequest(
        "POST",
        "http://example.com:8000/resource/1?b=1&a=2",
        headers=[("Content-Type", "text/plain")],
        body=b"Thank you for flying Hawk",
    )
    signer.sign(request)
    header = request.header("Authorization") or ""
    assert 'hash="Yi9LfIIFRtBEPt74PVmbTF/xVAwPn7ub15ePICfgnuY="' in header
    assert 'mac="aSe1DERmZuRl3pI36/9BdZmnErTw3sNzOOAUlfeKjVw="' in header


@pytest.mark.parametrize(("auth_id", "algorithm"), [("{{hawk_id}}", "sha256"), ("sha1-id", "sha1")])
def test_get_with_query_verified_by_mohawk(auth_id: str, algorithm: str) -> None:
    key = CREDENTIALS[auth_id.replace("{{hawk_id}}", "dh37fgj492je")]["key"]
    auth = hawk(authId=auth_id, authKey=key, algorithm=algorithm, extraData="ext data", user="bob")
    with loopback_server(receiver(require_payload_hash=False)) as server:
        request = signed(auth, OutgoingRequest("GET", f"{server.base_url}/r/1?b=1&a=two%20words"))
        assert send(request).code == 200


def test_unencoded_path_is_signed_as_sent() -> None:
    auth = hawk(authId="dh37fgj492je", authKey=EXAMPLE_KEY)
    with loopback_server(receiver(require_payload_hash=False)) as server:
        request = signed(auth, OutgoingRequest("GET", f"{server.base_url}/café/a b?q=x y"))
        assert send(request).code == 200


def test_payload_hash_verified_by_mohawk() -> None:
    auth = hawk(authId="dh37fgj492je", authKey=EXAMPLE_KEY, includePayloadHash=True)
    with loopback_server(receiver(require_payload_hash=True)) as server:
        request = OutgoingRequest(
            "POST",
            server.base_url + "/upload",
            headers=[("Content-Type", "application/json; charset=utf-8")],
            body=b'{"a": 1}',
        )
        signed(auth, request)
        assert send(request).code == 200
        request.body = b'{"a": 2}'
        assert send(request).code == 401


def test_app_and_delegation_verified_by_mohawk() -> None:
    auth = hawk(authId="dh37fgj492je", authKey=EXAMPLE_KEY, app="my-app", delegation="d-1")
    with loopback_server(receiver(require_payload_hash=False)) as server:
        request = signed(auth, OutgoingRequest("DELETE", server.base_url + "/item/3"))
        assert 'app="my-app", dlg="d-1"' in (request.header("Authorization") or "")
        assert send(request).code == 200


def test_fixed_nonce_and_timestamp_are_used() -> None:
    now = str(int(time.time()))
    auth = hawk(authId="dh37fgj492je", authKey=EXAMPLE_KEY, nonce="n0nce", timestamp=now)
    with loopback_server(receiver(require_payload_hash=False)) as server:
        request = signed(auth, OutgoingRequest("GET", server.base_url + "/"))
        assert f'ts="{now}", nonce="n0nce"' in (request.header("Authorization") or "")
        assert send(request).code == 200


def test_wrong_key_is_refused() -> None:
    auth = hawk(authId="dh37fgj492je", authKey="not the key")
    with loopback_server(receiver(require_payload_hash=False)) as server:
        assert send(signed(auth, OutgoingRequest("GET", server.base_url + "/"))).code == 401


def test_missing_credentials_leave_the_request_alone() -> None:
    request = signed(hawk(authId="", authKey="k"), OutgoingRequest("GET", "http://127.0.0.1/"))
    assert request.headers == []


def test_unsupported_algorithm() -> None:
    with pytest.raises(UnsupportedAuthError, match="unsupported hawk algorithm 'md5'"):
        signer_for(hawk(authId="a", authKey="k", algorithm="md5"), str)


def test_hawk_secrets_are_recorded() -> None:
    request = signed(
        hawk(authId="dh37fgj492je", authKey=EXAMPLE_KEY), OutgoingRequest("GET", "http://h/")
    )
    header = request.header("Authorization") or ""
    mac = header.rsplit('mac="', 1)[1].rstrip('"')
    assert {EXAMPLE_KEY, header, mac} <= request.secrets
