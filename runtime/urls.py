"""Request URLs as Postman builds them: joined from a URL object, parsed, percent-encoded.

Choices that follow Postman (postman-collection and postman-runtime):

- A URL object is joined from its parts, then parsed again, exactly as the
  runtime stringifies and re-parses it: a variable may hold a whole base URL
  (``host: ["{{baseUrl}}"]``).
- Encoding follows postman-url-encoder: the WHATWG path percent-encode set
  for the path, the query set for query keys and values (plus ``&`` for
  values, ``&`` and ``=`` for keys), C0 controls (newline: ``%0A``) and
  non-ASCII everywhere. Everything else is kept as written: ``'`` in a path,
  ``[ ] { } | ^`` in a query, existing ``%XX`` escapes in their own case
  (``%2a`` stays ``%2a``), and a ``%`` that starts no escape (``100%``).
- Backslashes before the query are path separators; leading white space is
  dropped, trailing white space is encoded.
- A URL without a protocol is ``http``; host names are lower-cased,
  internationalised names are sent in their IDNA (punycode) form, and IPv4
  shorthands are expanded as a WHATWG URL parser does (``127.1`` is
  ``127.0.0.1``, ``0x7f.1`` too).
- ``user:pa:ss@word@host``: the userinfo ends at the last ``@``, the user at
  the first ``:`` (the request builder sends it as basic auth).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from pmrunner.errors import RequestError

Resolver = Callable[[str], str]
"""Substitutes ``{{variables}}`` in one string."""

_PROTOCOL = re.compile(r"^([^:/?#]+)://")
# A host of numbers only, decimal, octal (0...) or hex (0x...): a WHATWG parser reads it as IPv4.
_IPV4_LABELS = re.compile(r"(?:(?:0x[0-9a-f]*|[0-9]+)\.){0,3}(?:0x[0-9a-f]*|[0-9]+)\.?")

# WHATWG percent-encode sets, ASCII part (C0 controls and DEL are always encoded).
_FRAGMENT_SET = frozenset(' "<>`')
_PATH_SET = _FRAGMENT_SET | frozenset("#?{}")
_USERINFO_SET = _PATH_SET | frozenset("/:;=@[\\]^|")
_QUERY_SET = frozenset(" \"#'<>")
_PARAM_VALUE_SET = _QUERY_SET | frozenset("&")
_PARAM_KEY_SET = _PARAM_VALUE_SET | frozenset("=")


@dataclass
class UrlParts:
    """A URL split the way Postman's URL parser splits it (values not encoded).

    query holds (key, value) pairs; a value of None means ``key`` without ``=``.
    """

    protocol: str | None = None
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: str | None = None
    path: list[str] = field(default_factory=list)
    query: list[tuple[str, str | None]] | None = None
    hash: str | None = None


def percent_encode(text: str, encode_set: frozenset[str]) -> str:
    """Percent-encode ``text`` with a WHATWG encode set.

    Parameters:
        text: the component to encode; ``%`` is kept, so existing ``%XX``
            escapes stay as written.
        encode_set: ASCII characters to encode besides C0 controls and DEL;
            every non-ASCII character is encoded as UTF-8.
    """
    out: list[str] = []
    for char in text:
        code = ord(char)
        if code < 0x20 or code == 0x7F or char in encode_set:
            out.append(f"%{code:02X}")
        elif code > 0x7F:
            out.append(quote(char, safe=""))
        else:
            out.append(char)
    return "".join(out)


def parse_url(raw: str) -> UrlParts:
    """Split a URL string into parts, as Postman does (no scheme is allowed).

    Parameters:
        raw: the URL with variables already substituted.
    """
    text = raw.lstrip()
    parts = UrlParts()
    if "#" in text:
        text, parts.hash = text.split("#", 1)
    if "?" in text:
        text, query = text.split("?", 1)
        parts.query = [_split_param(param) for param in query.split("&")]
    text = text.replace("\\", "/")
    match = _PROTOCOL.match(text)
    if match:
        parts.protocol = match.group(1)
        text = text[match.end() :]
    slash = text.find("/")
    authority, path = (text, "") if slash < 0 else (text[:slash], text[slash + 1 :])
    if "@" in authority:
        userinfo, authority = authority.rsplit("@", 1)
        parts.user, _, password = userinfo.partition(":")
        parts.password = password if ":" in userinfo else None
    parts.host, parts.port = _split_host_port(authority)
    parts.path = path.split("/") if slash >= 0 else []
    return parts


def _split_param(param: str) -> tuple[str, str | None]:
    key, equals, value = param.partition("=")
    return key, (value if equals else None)


def _split_host_port(authority: str) -> tuple[str, str | None]:
    if authority.startswith("["):  # IPv6 literal: [::1]:8080
        end = authority.find("]")
        if end > 0:
            rest = authority[end + 1 :]
            port = rest[1:] if rest.startswith(":") and rest[1:].isdigit() else None
            return authority[: end + 1], port
    host, colon, port = authority.rpartition(":")
    if colon and port.isdigit():
        return host, port
    if colon and not port:
        return host, None
    return authority, None


def encode_url(parts: UrlParts) -> str:
    """Serialise parts into an encoded URL; no protocol means ``http``."""
    url = (parts.protocol or "http").lower() + "://"
    if parts.user is not None or parts.password is not None:
        url += percent_encode(parts.user or "", _USERINFO_SET)
        if parts.password is not None:
            url += ":" + percent_encode(parts.password, _USERINFO_SET)
        url += "@"
    url += _encode_host(parts.host)
    if parts.port:
        url += ":" + parts.port
    url += "/" + percent_encode("/".join(parts.path), _PATH_SET)
    if parts.query is not None:
        url += "?" + "&".join(_encode_param(key, value) for key, value in parts.query)
    if parts.hash is not None:
        url += "#" + percent_encode(parts.hash, _FRAGMENT_SET)
    return url


def _encode_host(host: str) -> str:
    host = host.lower()
    if _IPV4_LABELS.fullmatch(host):
        try:  # inet_aton reads the same shorthands (127.1, 0x7f.1, 2130706433) as WHATWG
            return socket.inet_ntoa(socket.inet_aton(host.removesuffix(".")))
        except OSError:
            return host  # not an address after all; the connection will say so
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return percent_encode(host, _PATH_SET)  # not a valid name; the lookup will say so


def _encode_param(key: str, value: str | None) -> str:
    encoded = percent_encode(key, _PARAM_KEY_SET)
    if value is not None:
        encoded += "=" + percent_encode(value, _PARAM_VALUE_SET)
    return encoded


def normalize_url(raw: str) -> str:
    """Parse and encode a URL string (used for redirect targets too)."""
    return encode_url(parse_url(raw))


def url_authority(url: str) -> str:
    """``host[:port]`` of a URL, as the Host header carries it."""
    parts = parse_url(url)
    return parts.host + (f":{parts.port}" if parts.port else "")


def build_url(url: Any, resolve: Resolver) -> str:
    """Resolve and encode a request URL given as a string or a v2.1 URL object.

    Parameters:
        url: ``request.url``: a string or ``{raw, protocol, host, port, path,
            query, variable, hash}``; parts win over ``raw`` when ``host`` is set.
        resolve: substitutes ``{{variables}}`` in a string.

    Raises:
        RequestError: the URL is empty, or neither a string nor an object.
    """
    variables: Mapping[str, str] = {}
    if isinstance(url, str):
        joined = resolve(url)
    elif isinstance(url, Mapping):
        variables = _path_variables(url.get("variable"), resolve)
        if url.get("host"):
            joined = _join_url_object(url, resolve)
        elif isinstance(url.get("raw"), str):
            joined = resolve(url["raw"])
        else:
            raise RequestError("request.url has neither `host` nor `raw`")
    else:
        raise RequestError(f"request.url must be a string or an object, not {type(url).__name__}")
    if not joined.strip():
        raise RequestError("request.url is empty")
    parts = parse_url(joined)
    parts.path = [_substitute_path_variable(segment, variables) for segment in parts.path]
    return encode_url(parts)


def _join_url_object(url: Mapping[str, Any], resolve: Resolver) -> str:
    text = ""
    protocol = url.get("protocol")
    if isinstance(protocol, str) and protocol:
        text += resolve(protocol).rstrip(":") + "://"
    auth = url.get("auth")
    if isinstance(auth, Mapping) and (auth.get("user") or auth.get("password")):
        text += resolve(str(auth.get("user") or ""))
        if auth.get("password") is not None:
            text += ":" + resolve(str(auth["password"]))
        text += "@"
    text += resolve(_join(url.get("host"), "."))
    if url.get("port") not in (None, ""):
        text += ":" + resolve(str(url["port"]))
    path = url.get("path")
    if path:
        joined_path = resolve(_join(path, "/"))
        text += joined_path if joined_path.startswith("/") else "/" + joined_path
    query = _enabled_query(url.get("query"), resolve)
    if query is not None:
        text += "?" + "&".join(key if value is None else f"{key}={value}" for key, value in query)
    if isinstance(url.get("hash"), str):
        text += "#" + resolve(url["hash"])
    return text


def _join(value: Any, separator: str) -> str:
    if isinstance(value, list):
        return separator.join("" if item is None else str(item) for item in value)
    return "" if value is None else str(value)


def _enabled_query(query: Any, resolve: Resolver) -> list[tuple[str, str | None]] | None:
    if not isinstance(query, list) or not query:
        return None
    enabled = [param for param in query if isinstance(param, Mapping) and not param.get("disabled")]
    if not enabled:
        return None  # every parameter disabled: no "?" at all, as Postman
    return [
        (
            resolve(str(param.get("key") or "")),
            None if param.get("value") is None else resolve(str(param["value"])),
        )
        for param in enabled
    ]


def _path_variables(variables: Any, resolve: Resolver) -> dict[str, str]:
    found: dict[str, str] = {}
    for variable in variables if isinstance(variables, list) else []:
        if not isinstance(variable, Mapping) or variable.get("disabled"):
            continue
        name = variable.get("key") or variable.get("id")
        # Postman substitutes only string values; anything else leaves `:name` in the path.
        if isinstance(name, str) and isinstance(variable.get("value"), str):
            found[name] = resolve(variable["value"])
    return found


def _substitute_path_variable(segment: str, variables: Mapping[str, str]) -> str:
    if len(segment) > 1 and segment.startswith(":") and segment[1:] in variables:
        return variables[segment[1:]]
    return segment
