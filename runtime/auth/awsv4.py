"""AWS Signature Version 4, in the Authorization header or in the query string.

Implemented with ``hashlib``/``hmac`` rather than a signing library: the
signer works on ``OutgoingRequest`` (not on a requests object), signs every
header the request carries as Postman does, and supports query-string
signing; the algorithm itself is a few dozen lines. The tests check it
against botocore and AWS's published test-suite vector.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

from runtime.auth.params import AuthParams
from runtime.auth.simple import NoChallenge
from runtime.auth.urls import (
    add_secrets,
    host_header,
    query_pairs,
    remove_query_params,
    set_query_params,
    wire_url,
)
from runtime.exchange import OutgoingRequest

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
CONTENT_SHA256 = "X-Amz-Content-Sha256"
# Headers a proxy or the HTTP client may add, drop or rewrite: never signed.
_UNSIGNED_HEADERS = frozenset(
    {
        "authorization",
        "connection",
        "expect",
        "keep-alive",
        "presigned-expires",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
_QUERY_AUTH_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Security-Token",
    "X-Amz-Signature",
)
_S3_QUERY_EXPIRES = "86400"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def signing_key(secret_key: str, datestamp: str, region: str, service: str) -> bytes:
    """The derived key: HMAC chain over date, region, service and ``aws4_request``."""
    key = _hmac(f"AWS4{secret_key}".encode(), datestamp)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def remove_dot_segments(path: str) -> str:
    """RFC 3986 dot-segment removal; empty segments collapse, as AWS services expect."""
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    trailing = "/" if path.endswith("/") and kept else ""
    return "/" + "/".join(kept) + trailing


def canonical_uri(url: str, service: str) -> str:
    """The path as AWS canonicalises it, from the path as sent: S3 takes it as it is;
    every other service collapses empty segments and encodes the (encoded) path again.
    """
    path = urlsplit(wire_url(url)).path or "/"
    if service == "s3":
        return path
    return quote(remove_dot_segments(path), safe="/~")


def canonical_query(query: str) -> str:
    """Decoded pairs re-encoded per RFC 3986 and sorted by name, then value."""
    encoded = sorted(
        (quote(name, safe="-_.~"), quote(value, safe="-_.~")) for name, value in query_pairs(query)
    )
    return "&".join(f"{name}={value}" for name, value in encoded)


def headers_to_sign(request: OutgoingRequest) -> dict[str, str]:
    """Lower-case name -> canonical value, for every signable header plus ``host``.

    Repeated headers join with commas; values are trimmed and inner runs of
    spaces collapse to one, as SigV4 requires.
    """
    grouped: dict[str, list[str]] = {}
    for name, value in request.headers:
        lowered = name.strip().lower()
        if lowered not in _UNSIGNED_HEADERS:
            grouped.setdefault(lowered, []).append(" ".join(value.split()))
    grouped.setdefault("host", [host_header(wire_url(request.url))])
    return {name: ",".join(values) for name, values in sorted(grouped.items())}


@dataclass(frozen=True)
class AwsV4Signer(NoChallenge):
    """Signs requests with AWS Signature Version 4.

    Parameters:
        access_key, secret_key: the AWS credentials; without both nothing is signed.
        region: defaults to ``us-east-1``; service: defaults to ``execute-api`` (as Postman).
        session_token: sent and signed as ``X-Amz-Security-Token`` when set.
        in_query: put the auth data in the query string (a pre-signed URL).
        now: the clock, replaceable for reproducible signatures.
    """

    access_key: str
    secret_key: str
    region: str = "us-east-1"
    service: str = "execute-api"
    session_token: str = ""
    in_query: bool = False
    now: Callable[[], datetime] = field(default=_utc_now, compare=False, repr=False)

    @classmethod
    def from_params(cls, params: AuthParams) -> AwsV4Signer:
        return cls(
            access_key=params.text("accessKey"),
            secret_key=params.text("secretKey"),
            region=params.text("region").strip() or "us-east-1",
            service=params.text("service").strip() or "execute-api",
            session_token=params.text("sessionToken"),
            in_query=params.flag("addAuthDataToQuery"),
        )

    def sign(self, request: OutgoingRequest) -> None:
        if not (self.access_key and self.secret_key):
            return
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            request.remove_header(name)
        request.url = remove_query_params(request.url, _QUERY_AUTH_PARAMS)
        amz_date = self.now().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        if self.in_query:
            signature = self._sign_query(request, amz_date)
        else:
            signature = self._sign_headers(request, amz_date)
        add_secrets(request, self.secret_key, self.session_token, signature)

    def _scope(self, amz_date: str) -> str:
        return f"{amz_date[:8]}/{self.region}/{self.service}/aws4_request"

    def _sign_headers(self, request: OutgoingRequest, amz_date: str) -> str:
        request.set_header("X-Amz-Date", amz_date)
        if self.session_token:
            request.set_header("X-Amz-Security-Token", self.session_token)
        payload = self._payload_hash(request)
        headers = headers_to_sign(request)
        signature = self.signature(request, headers, payload, amz_date)
        value = (
            f"{ALGORITHM} Credential={self.access_key}/{self._scope(amz_date)}, "
            f"SignedHeaders={';'.join(headers)}, Signature={signature}"
        )
        request.set_header("Authorization", value)
        add_secrets(request, value)
        return signature

    def _sign_query(self, request: OutgoingRequest, amz_date: str) -> str:
        payload = UNSIGNED_PAYLOAD if self.service == "s3" else self._payload_hash(request)
        headers = headers_to_sign(request)
        auth_params = [
            ("X-Amz-Algorithm", ALGORITHM),
            ("X-Amz-Credential", f"{self.access_key}/{self._scope(amz_date)}"),
            ("X-Amz-Date", amz_date),
        ]
        if self.service == "s3":
            auth_params.append(("X-Amz-Expires", _S3_QUERY_EXPIRES))
        auth_params.append(("X-Amz-SignedHeaders", ";".join(headers)))
        if self.session_token:
            auth_params.append(("X-Amz-Security-Token", self.session_token))
        request.url = set_query_params(request.url, auth_params)
        signature = self.signature(request, headers, payload, amz_date)
        request.url = set_query_params(request.url, [("X-Amz-Signature", signature)])
        return signature

    def _payload_hash(self, request: OutgoingRequest) -> str:
        """SHA-256 of the body, sent as X-Amz-Content-Sha256 when there is a body (or for S3).

        Like Postman, a request without a body keeps any X-Amz-Content-Sha256
        it already has (``UNSIGNED-PAYLOAD``, say) and uses it as the payload hash.
        """
        body = request.body or b""
        if body or self.service == "s3":
            digest = hashlib.sha256(body).hexdigest()
            request.set_header(CONTENT_SHA256, digest)
            return digest
        return request.header(CONTENT_SHA256) or EMPTY_SHA256

    def signature(
        self, request: OutgoingRequest, headers: dict[str, str], payload: str, amz_date: str
    ) -> str:
        """The hex signature over the canonical request (SigV4 tasks 1 to 3)."""
        canonical_request = "\n".join(
            [
                request.method.upper(),
                canonical_uri(request.url, self.service),
                canonical_query(urlsplit(request.url).query),
                "".join(f"{name}:{value}\n" for name, value in headers.items()),
                ";".join(headers),
                payload,
            ]
        )
        string_to_sign = "\n".join(
            [
                ALGORITHM,
                amz_date,
                self._scope(amz_date),
                hashlib.sha256(canonical_request.encode()).hexdigest(),
            ]
        )
        key = signing_key(self.secret_key, amz_date[:8], self.region, self.service)
        return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
