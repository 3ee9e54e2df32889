"""HTTP Digest authentication (RFC 7616, and RFC 2617 servers without qop).

With a realm and a nonce known up front the request is signed at once.
Otherwise it goes out without credentials; the server's 401 carries a
``WWW-Authenticate: Digest`` challenge, ``challenge()`` takes realm, nonce,
opaque, qop and algorithm from it, signs, and asks for one more send.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.request import parse_http_list

from pmrunner.errors import UnsupportedAuthError
from runtime.auth.params import AuthParams
from runtime.auth.urls import add_secrets, request_target
from runtime.exchange import HttpResponse, OutgoingRequest

# Algorithm name as the RFCs spell it -> hashlib name. The "-sess" variants
# share the hash and differ in how A1 is built.
_HASHES = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
_SESS = "-sess"
_FIRST_NONCE_COUNT = "00000001"
_CHALLENGE_CODES = (401, 403)  # Postman answers a Digest challenge on either


def canonical_algorithm(name: str) -> str:
    """The RFC spelling of an algorithm name (``md5-SESS`` -> ``MD5-sess``).

    Raises ``UnsupportedAuthError`` for an algorithm this runner cannot compute.
    """
    upper = (name or "MD5").strip().upper()
    base, sess = (upper[: -len(_SESS)], _SESS) if upper.endswith(_SESS.upper()) else (upper, "")
    if base not in _HASHES or (base == "SHA-512-256" and not _has_sha512_256()):
        raise UnsupportedAuthError(f"unsupported digest algorithm '{name}'")
    return base + sess


def _has_sha512_256() -> bool:
    return "sha512_256" in hashlib.algorithms_available


def _hasher(algorithm: str) -> Callable[[bytes], str]:
    name = _HASHES[algorithm.removesuffix(_SESS)]
    return lambda data: hashlib.new(name, data).hexdigest()


def digest_response(
    *,
    algorithm: str,
    username: str,
    password: str,
    realm: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str = "",
    nonce_count: str = "",
    client_nonce: str = "",
    body: bytes = b"",
) -> str:
    """The ``response`` value of RFC 7616 section 3.4.1 (RFC 2617 form when qop is empty).

    Parameters:
        algorithm: a canonical name, see ``canonical_algorithm``.
        qop: ``auth``, ``auth-int`` (hashes ``body`` into A2) or empty.
        nonce_count, client_nonce: ``nc`` and ``cnonce``; used with a qop or ``-sess``.
    """
    digest = _hasher(algorithm)
    a1 = f"{username}:{realm}:{password}"
    if algorithm.endswith(_SESS):
        a1 = f"{digest(a1.encode())}:{nonce}:{client_nonce}"
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        a2 = f"{a2}:{digest(body)}"
    ha1, ha2 = digest(a1.encode()), digest(a2.encode())
    if qop in ("auth", "auth-int"):
        return digest(f"{ha1}:{nonce}:{nonce_count}:{client_nonce}:{qop}:{ha2}".encode())
    return digest(f"{ha1}:{nonce}:{ha2}".encode())


def _quoted(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _random_client_nonce() -> str:
    return secrets.token_hex(8)


@dataclass
class DigestSigner:
    """Signs with HTTP Digest and answers one challenge.

    Parameters:
        username, password: the credentials.
        realm, nonce, opaque: the server's values, when known before the first send.
        algorithm: ``MD5`` (default), ``MD5-sess``, ``SHA-256``, ``SHA-256-sess``
            (and ``SHA-512-256[-sess]`` where the platform's hashlib has it).
        qop: ``auth``, ``auth-int`` or empty.
        nonce_count, client_nonce: ``nc`` and ``cnonce``; generated when empty.
        retry: False for ``disableRetryRequest``: never answer a challenge.
    """

    username: str
    password: str
    realm: str = ""
    nonce: str = ""
    opaque: str = ""
    algorithm: str = "MD5"
    qop: str = ""
    nonce_count: str = ""
    client_nonce: str = ""
    retry: bool = True
    _answered: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self.algorithm = canonical_algorithm(self.algorithm)
        self.qop = self.qop.strip().lower()

    @classmethod
    def from_params(cls, params: AuthParams) -> DigestSigner:
        return cls(
            username=params.text("username"),
            password=params.text("password"),
            realm=params.text("realm"),
            nonce=params.text("nonce"),
            opaque=params.text("opaque"),
            algorithm=params.text("algorithm", "MD5"),
            qop=params.text("qop"),
            nonce_count=params.text("nc"),
            client_nonce=params.text("cnonce"),
            retry=not params.flag("disableRetryRequest"),
        )

    def sign(self, request: OutgoingRequest) -> None:
        """Add the Authorization header, or nothing while realm or nonce is unknown."""
        if not (self.realm and self.nonce):
            return
        value = self.authorization(request.method, request_target(request.url), request.body)
        request.set_header("Authorization", value)
        add_secrets(request, self.password, value)

    def authorization(self, method: str, uri: str, body: bytes | None = None) -> str:
        """The ``Authorization`` header value for one request."""
        uses_cnonce = bool(self.qop) or self.algorithm.endswith(_SESS)
        if uses_cnonce:
            self.nonce_count = self.nonce_count or _FIRST_NONCE_COUNT
            self.client_nonce = self.client_nonce or _random_client_nonce()
        response = digest_response(
            algorithm=self.algorithm,
            username=self.username,
            password=self.password,
            realm=self.realm,
            nonce=self.nonce,
            method=method.upper(),
            uri=uri,
            qop=self.qop,
            nonce_count=self.nonce_count,
            client_nonce=self.client_nonce,
            body=body or b"",
        )
        fields = [
            f"username={_quoted(self.username)}",
            f"realm={_quoted(self.realm)}",
            f"nonce={_quoted(self.nonce)}",
            f"uri={_quoted(uri)}",
            f"algorithm={self.algorithm}",
        ]
        if self.qop:
            fields.append(f"qop={self.qop}")
        if uses_cnonce:
            fields += [f"nc={self.nonce_count}", f"cnonce={_quoted(self.client_nonce)}"]
        fields.append(f"response={_quoted(response)}")
        if self.opaque:
            fields.append(f"opaque={_quoted(self.opaque)}")
        return "Digest " + ", ".join(fields)

    def challenge(self, request: OutgoingRequest, response: HttpResponse) -> bool:
        """Learn from a Digest challenge and re-sign; True means "send it again".

        Answers at most once, never with ``disableRetryRequest``, and not when
        the server repeats the nonce already used (the credentials are wrong).
        """
        if not self.retry or self._answered or response.code not in _CHALLENGE_CODES:
            return False
        offer = _pick_challenge(response.header_values("WWW-Authenticate"))
        if offer is None:
            return False
        if offer.get("nonce") == self.nonce and offer.get("stale", "").lower() != "true":
            return False
        self._adopt(offer)
        self._answered = True
        self.sign(request)
        return True

    def _adopt(self, offer: dict[str, str]) -> None:
        """Take the server's parameters and start a fresh nonce count."""
        self.realm = offer.get("realm", "")
        self.nonce = offer.get("nonce", "")
        self.opaque = offer.get("opaque", "")
        if offer.get("algorithm"):
            self.algorithm = canonical_algorithm(offer["algorithm"])
        self.qop = _pick_qop(offer.get("qop", ""), self.qop)
        self.nonce_count = _FIRST_NONCE_COUNT
        self.client_nonce = _random_client_nonce()


def _pick_challenge(header_values: list[str]) -> dict[str, str] | None:
    """The first Digest challenge with an algorithm this runner supports, as a dict."""
    for value in header_values:
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() != "digest":
            continue
        offer = _auth_params(rest)
        if "nonce" not in offer:
            continue
        try:
            canonical_algorithm(offer.get("algorithm", "MD5"))
        except UnsupportedAuthError:
            continue
        return offer
    return None


def _auth_params(text: str) -> dict[str, str]:
    """``name=value`` pairs of a challenge, names lower-cased, quoted values unescaped."""
    params = {}
    for item in parse_http_list(text):
        name, separator, value = item.partition("=")
        if not separator:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[name.strip().lower()] = value
    return params


def _pick_qop(offered: str, wanted: str) -> str:
    """The qop to answer with: the configured one when offered, else ``auth``, else ``auth-int``.

    A server that offers no qop speaks RFC 2069 and must get none back.
    """
    options = [option.strip().lower() for option in offered.split(",") if option.strip()]
    for candidate in (wanted, "auth", "auth-int"):
        if candidate and candidate in options:
            return candidate
    return ""
