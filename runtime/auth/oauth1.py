"""OAuth 1.0a request signing (RFC 5849), with oauthlib computing the signature.

As in Postman, the ``oauth_*`` parameters go into an ``Authorization: OAuth``
header by default; with ``addParamsToHeader`` off they go into a urlencoded
POST/PUT body, or else into the query string. Query parameters and the
parameters of a urlencoded body are part of the signature base string.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from jwt import PyJWTError
from oauthlib.oauth1.rfc5849 import parameters as oauth_parameters
from oauthlib.oauth1.rfc5849 import signature as oauth_signature

from pmrunner.errors import RequestError, UnsupportedAuthError
from runtime.auth.params import AuthParams
from runtime.auth.simple import NoChallenge
from runtime.auth.urls import (
    add_secrets,
    encode,
    query_pairs,
    remove_query_params,
    replace_body,
    set_query_params,
    urlencoded_body,
    wire_url,
    with_params,
    without_params,
)
from runtime.exchange import OutgoingRequest

OAUTH_PARAM_NAMES = (
    "oauth_consumer_key",
    "oauth_token",
    "oauth_signature_method",
    "oauth_timestamp",
    "oauth_nonce",
    "oauth_version",
    "oauth_callback",
    "oauth_verifier",
    "oauth_body_hash",
    "oauth_signature",
)

_SIGN: dict[str, Callable[[str, _Secrets], str]] = {
    "HMAC-SHA1": oauth_signature.sign_hmac_sha1_with_client,
    "HMAC-SHA256": oauth_signature.sign_hmac_sha256_with_client,
    "HMAC-SHA512": oauth_signature.sign_hmac_sha512_with_client,
    "RSA-SHA1": oauth_signature.sign_rsa_sha1_with_client,
    "RSA-SHA256": oauth_signature.sign_rsa_sha256_with_client,
    "RSA-SHA512": oauth_signature.sign_rsa_sha512_with_client,
    "PLAINTEXT": oauth_signature.sign_plaintext_with_client,
}
# The body hash extension hashes with the signature method's own hash.
_BODY_HASH = {
    "HMAC-SHA1": "sha1",
    "HMAC-SHA256": "sha256",
    "HMAC-SHA512": "sha512",
    "RSA-SHA1": "sha1",
    "RSA-SHA256": "sha256",
    "RSA-SHA512": "sha512",
}
_FORM_MODES = ("urlencoded", "formdata")
_NONCE_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class _Secrets:
    """The attributes oauthlib's ``sign_*_with_client`` functions read."""

    client_secret: str
    resource_owner_secret: str
    rsa_key: str


@dataclass(frozen=True)
class OAuth1Signer(NoChallenge):
    """Signs requests with OAuth 1.0a.

    Parameters:
        consumer_key, consumer_secret: the client credentials.
        token, token_secret: the token credentials (may be empty).
        signature_method: ``HMAC-SHA1`` (default), ``HMAC-SHA256``, ``HMAC-SHA512``,
            ``RSA-SHA1``, ``RSA-SHA256``, ``RSA-SHA512`` or ``PLAINTEXT``.
        private_key: PEM RSA private key for the RSA methods.
        timestamp, nonce: fixed values; generated per request when empty.
        version: ``oauth_version`` (``1.0``).
        realm: the ``realm`` of the Authorization header.
        callback, verifier: ``oauth_callback`` and ``oauth_verifier``.
        add_to_header: put the parameters in the Authorization header.
        add_empty_params: sign and send parameters whose value is empty.
        include_body_hash: add ``oauth_body_hash`` to requests without a form body.
    """

    consumer_key: str
    consumer_secret: str = ""
    token: str = ""
    token_secret: str = ""
    signature_method: str = "HMAC-SHA1"
    private_key: str = ""
    timestamp: str = ""
    nonce: str = ""
    version: str = "1.0"
    realm: str = ""
    callback: str = ""
    verifier: str = ""
    add_to_header: bool = True
    add_empty_params: bool = False
    include_body_hash: bool = False

    def __post_init__(self) -> None:
        method = self.signature_method.strip().upper() or "HMAC-SHA1"
        if method not in _SIGN:
            raise UnsupportedAuthError(
                f"unsupported oauth1 signature method '{self.signature_method}'"
            )
        object.__setattr__(self, "signature_method", method)

    @classmethod
    def from_params(cls, params: AuthParams) -> OAuth1Signer:
        return cls(
            consumer_key=params.text("consumerKey"),
            consumer_secret=params.text("consumerSecret"),
            token=params.text("token"),
            token_secret=params.text("tokenSecret"),
            signature_method=params.text("signatureMethod", "HMAC-SHA1"),
            private_key=params.text("privateKey"),
            timestamp=params.text("timestamp"),
            nonce=params.text("nonce"),
            version=params.text("version", "1.0"),
            realm=params.text("realm"),
            callback=params.text("callback"),
            verifier=params.text("verifier"),
            add_to_header=params.flag("addParamsToHeader", True),
            add_empty_params=params.flag("addEmptyParamsToSign"),
            include_body_hash=params.flag("includeBodyHash"),
        )

    @property
    def _uses_rsa(self) -> bool:
        return self.signature_method.startswith("RSA-")

    def sign(self, request: OutgoingRequest) -> None:
        """Sign, replacing any OAuth parameters the request already carries.

        Like Postman, does nothing without a consumer key and a consumer
        secret (a private key for the RSA methods).
        """
        secret = self.private_key if self._uses_rsa else self.consumer_secret
        if not (self.consumer_key and secret):
            return
        _strip_oauth(request)
        oauth_params = self._oauth_params(request)
        signature = self._signature(request, oauth_params)
        oauth_params.append(("oauth_signature", signature))
        self._place(request, oauth_params)
        add_secrets(
            request,
            self.consumer_secret,
            self.token_secret,
            self.token,
            self.private_key,
            signature,
            encode(signature),
        )

    def _oauth_params(self, request: OutgoingRequest) -> list[tuple[str, str]]:
        """The ``oauth_*`` protocol parameters, without the signature."""
        core = [
            ("oauth_consumer_key", self.consumer_key),
            ("oauth_token", self.token),
            ("oauth_signature_method", self.signature_method),
            ("oauth_timestamp", self.timestamp or str(int(time.time()))),
            ("oauth_nonce", self.nonce or _random_nonce()),
            ("oauth_version", self.version),
        ]
        params = [(k, v) for k, v in core if v.strip() or self.add_empty_params]
        # Extension parameters are only sent when they have a value, as in Postman.
        extensions = [
            ("oauth_callback", self.callback),
            ("oauth_verifier", self.verifier),
            ("oauth_body_hash", self._body_hash(request)),
        ]
        return params + [(k, v) for k, v in extensions if v]

    def _body_hash(self, request: OutgoingRequest) -> str:
        """``oauth_body_hash`` for a non-form body (an absent body hashes as empty), or ``""``."""
        algorithm = _BODY_HASH.get(self.signature_method)
        if not self.include_body_hash or algorithm is None or request.body_mode in _FORM_MODES:
            return ""
        digest = hashlib.new(algorithm, request.body or b"").digest()
        return base64.b64encode(digest).decode("ascii")

    def _signature(self, request: OutgoingRequest, oauth_params: list[tuple[str, str]]) -> str:
        """Compute ``oauth_signature`` over the method, base URI and all parameters."""
        url = wire_url(request.url)  # the server signs the path and query it receives
        signed = [*oauth_params, *query_pairs(urlsplit(url).query)]
        form = urlencoded_body(request)
        if form is not None:
            signed += query_pairs(form)
        base_string = oauth_signature.signature_base_string(
            request.method.upper(),
            oauth_signature.base_string_uri(url),
            oauth_signature.normalize_parameters(signed),
        )
        keys = _Secrets(self.consumer_secret, self.token_secret, self.private_key)
        try:
            return str(_SIGN[self.signature_method](base_string, keys))
        except (PyJWTError, ValueError) as error:  # only the RSA methods can fail here
            raise RequestError(
                f"oauth1 {self.signature_method}: 'privateKey' is not a usable RSA "
                f"private key ({error})"
            ) from None

    def _place(self, request: OutgoingRequest, oauth_params: list[tuple[str, str]]) -> None:
        """Put the parameters where RFC 5849 section 3.5 and the settings say."""
        if self.add_to_header:
            headers = oauth_parameters.prepare_headers(oauth_params, {}, realm=self.realm or None)
            value = str(headers["Authorization"])
            request.set_header("Authorization", value)
            add_secrets(request, value)
            return
        form = urlencoded_body(request)
        if form is not None and request.method.upper() in ("POST", "PUT"):
            replace_body(request, with_params(form, oauth_params).encode("utf-8"))
        else:
            request.url = set_query_params(request.url, oauth_params)


def _strip_oauth(request: OutgoingRequest) -> None:
    """Remove the Authorization header and ``oauth_*`` parameters of an earlier signing."""
    request.remove_header("Authorization")
    request.url = remove_query_params(request.url, OAUTH_PARAM_NAMES)
    form = urlencoded_body(request)
    if form is not None:
        stripped = without_params(form, OAUTH_PARAM_NAMES)
        if stripped != form:
            replace_body(request, stripped.encode("utf-8"))


def _random_nonce() -> str:
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(11))
