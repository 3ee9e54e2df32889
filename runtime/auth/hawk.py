"""Hawk request authentication (the ``hawk.1.header`` scheme).

The MAC is an HMAC over a short normalised string, computed here with
``hmac``; servers verify it with any Hawk implementation (the tests use
mohawk's Receiver).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
import time
from dataclasses import dataclass

from pmrunner.errors import UnsupportedAuthError
from runtime.auth.params import AuthParams
from runtime.auth.simple import NoChallenge
from runtime.auth.urls import add_secrets, host_and_port, request_target, wire_url
from runtime.exchange import OutgoingRequest

_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}
_NONCE_ALPHABET = string.ascii_letters + string.digits


def payload_hash(algorithm: str, content_type: str, payload: bytes) -> str:
    """The Hawk payload hash: base64 of H("hawk.1.payload\\n<type>\\n<payload>\\n").

    Parameters:
        algorithm: ``sha1`` or ``sha256``.
        content_type: the Content-Type header; parameters after ``;`` are dropped.
        payload: the request body.
    """
    media_type = content_type.split(";")[0].strip().lower()
    digest = _ALGORITHMS[algorithm]()
    digest.update(f"hawk.1.payload\n{media_type}\n".encode())
    digest.update(payload)
    digest.update(b"\n")
    return base64.b64encode(digest.digest()).decode("ascii")


@dataclass(frozen=True)
class HawkArtifacts:
    """What goes into one request's MAC besides the key."""

    method: str
    resource: str  # path and query
    host: str
    port: int
    timestamp: str
    nonce: str
    payload_hash: str = ""
    ext: str = ""
    app: str = ""
    dlg: str = ""

    def normalized(self) -> str:
        """The ``hawk.1.header`` normalised string the MAC is computed over."""
        ext = self.ext.replace("\\", "\\\\").replace("\n", "\\n")
        text = (
            f"hawk.1.header\n{self.timestamp}\n{self.nonce}\n{self.method.upper()}\n"
            f"{self.resource}\n{self.host.lower()}\n{self.port}\n{self.payload_hash}\n{ext}\n"
        )
        if self.app:
            text += f"{self.app}\n{self.dlg}\n"
        return text


def hawk_mac(algorithm: str, key: str, artifacts: HawkArtifacts) -> str:
    """base64(HMAC(key, normalised string)) with ``sha1`` or ``sha256``."""
    mac = hmac.new(key.encode(), artifacts.normalized().encode(), _ALGORITHMS[algorithm])
    return base64.b64encode(mac.digest()).decode("ascii")


def _attribute(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


@dataclass(frozen=True)
class HawkSigner(NoChallenge):
    """Signs requests with ``Authorization: Hawk id=..., ts=..., nonce=..., mac=...``.

    Parameters:
        auth_id, auth_key: the Hawk credentials; without both the request is left alone.
        algorithm: ``sha256`` (default) or ``sha1``.
        nonce, timestamp: fixed values; generated per request when empty.
        ext, app, dlg: Postman's extraData, app and delegation.
        include_payload_hash: add ``hash=`` over the body and its Content-Type.
        user: accepted for compatibility; Hawk has no place for it in the header.
    """

    auth_id: str
    auth_key: str
    algorithm: str = "sha256"
    nonce: str = ""
    timestamp: str = ""
    ext: str = ""
    app: str = ""
    dlg: str = ""
    include_payload_hash: bool = False
    user: str = ""

    def __post_init__(self) -> None:
        algorithm = self.algorithm.strip().lower() or "sha256"
        if algorithm not in _ALGORITHMS:
            raise UnsupportedAuthError(f"unsupported hawk algorithm '{self.algorithm}'")
        object.__setattr__(self, "algorithm", algorithm)

    @classmethod
    def from_params(cls, params: AuthParams) -> HawkSigner:
        return cls(
            auth_id=params.text("authId"),
            auth_key=params.text("authKey"),
            algorithm=params.text("algorithm", "sha256"),
            nonce=params.text("nonce"),
            timestamp=params.text("timestamp"),
            ext=params.text("extraData"),
            app=params.text("app"),
            dlg=params.text("delegation"),
            include_payload_hash=params.flag("includePayloadHash"),
            user=params.text("user"),
        )

    def sign(self, request: OutgoingRequest) -> None:
        if not (self.auth_id and self.auth_key):
            return
        artifacts = self.artifacts(request)
        mac = hawk_mac(self.algorithm, self.auth_key, artifacts)
        value = self._header(artifacts, mac)
        request.set_header("Authorization", value)
        add_secrets(request, self.auth_key, mac, value)

    def artifacts(self, request: OutgoingRequest) -> HawkArtifacts:
        """The values the MAC covers for this request."""
        host, port = host_and_port(wire_url(request.url))
        digest = ""
        if self.include_payload_hash:
            content_type = request.header("Content-Type") or ""
            digest = payload_hash(self.algorithm, content_type, request.body or b"")
        return HawkArtifacts(
            method=request.method,
            resource=request_target(request.url),
            host=host,
            port=port,
            timestamp=_timestamp(self.timestamp),
            nonce=self.nonce or "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(6)),
            payload_hash=digest,
            ext=self.ext,
            app=self.app,
            dlg=self.dlg,
        )

    def _header(self, artifacts: HawkArtifacts, mac: str) -> str:
        fields = [
            f'id="{_attribute(self.auth_id)}"',
            f'ts="{artifacts.timestamp}"',
            f'nonce="{_attribute(artifacts.nonce)}"',
        ]
        if artifacts.payload_hash:
            fields.append(f'hash="{artifacts.payload_hash}"')
        if artifacts.ext:
            fields.append(f'ext="{_attribute(artifacts.ext)}"')
        fields.append(f'mac="{mac}"')
        if artifacts.app:
            fields.append(f'app="{_attribute(artifacts.app)}"')
            if artifacts.dlg:
                fields.append(f'dlg="{_attribute(artifacts.dlg)}"')
        return "Hawk " + ", ".join(fields)


def _timestamp(fixed: str) -> str:
    """The fixed timestamp when it is a positive integer, else now (as Postman does)."""
    try:
        value = int(fixed.strip())
    except ValueError:
        value = 0
    return str(value if value > 0 else int(time.time()))
