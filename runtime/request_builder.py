"""Turn a Postman v2.1 request object into an ``OutgoingRequest``.

The builder does what Postman's runtime does before a request leaves:
variables are substituted in every part, the URL is rebuilt and
percent-encoded, disabled headers and parameters are dropped, the body is
encoded for its mode, and Postman's system headers are added.

Choices that follow Postman (postman-collection and postman-runtime):

- The method is upper-cased, whatever case the collection uses
  (``Request`` in postman-collection upper-cases it), so custom methods such
  as ``purge`` or ``Report`` go out as ``PURGE`` and ``REPORT``.
- A URL object is joined from its parts, then parsed again, exactly as the
  runtime stringifies and re-parses it: a variable may hold a whole base URL
  (``host: ["{{baseUrl}}"]``).
- Path encoding uses the WHATWG path percent-encode set, query keys and values
  the query set (plus ``&`` for values, ``&`` and ``=`` for keys); existing
  ``%XX`` escapes are kept. One difference: a ``%`` that starts no escape is
  sent as ``%25``, so that the wire form stays unambiguous.
- urlencoded bodies are percent-encoded as RFC 3986 (space is ``%20``);
  parameters keep their order and duplicates.
"""

from __future__ import annotations

import json
import mimetypes
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from urllib3.fields import RequestField
from urllib3.filepost import encode_multipart_formdata

from pmrunner.errors import RequestError
from runtime.exchange import OutgoingRequest

Resolver = Callable[[str], str]

USER_AGENT = "PostmanRuntime/7.43.0"
ACCEPT_ENCODING = "gzip, deflate, br"

# Methods whose body Postman drops unless protocolProfileBehavior.disableBodyPruning is set.
BODYLESS_METHODS = frozenset({"GET", "HEAD", "COPY", "PURGE", "UNLOCK"})

RAW_LANGUAGE_CONTENT_TYPES = {
    "json": "application/json",
    "javascript": "application/javascript",
    "xml": "application/xml",
    "html": "text/html",
    "text": "text/plain",
}

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_PROTOCOL = re.compile(r"^([^:/?#]+)://")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")

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


@dataclass
class _Body:
    content: bytes
    mode: str
    content_type: str | None = None


def percent_encode(text: str, encode_set: frozenset[str]) -> str:
    """Percent-encode ``text`` with a WHATWG encode set.

    Parameters:
        text: the component to encode; existing ``%XX`` escapes are kept.
        encode_set: ASCII characters to encode besides C0 controls and DEL;
            every non-ASCII character is encoded as UTF-8.
    """
    out: list[str] = []
    for index, char in enumerate(text):
        code = ord(char)
        if char == "%":
            out.append("%" if _ESCAPE.match(text, index) else "%25")
        elif code < 0x20 or code == 0x7F or char in encode_set:
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
    text = raw.strip()
    parts = UrlParts()
    if "#" in text:
        text, parts.hash = text.split("#", 1)
    if "?" in text:
        text, query = text.split("?", 1)
        parts.query = [_split_param(param) for param in query.split("&")]
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


def build_url(url: Any, resolve: Resolver) -> str:
    """Resolve and encode a request URL given as a string or a v2.1 URL object.

    Parameters:
        url: ``request.url``: a string or ``{raw, protocol, host, port, path,
            query, variable, hash}``; parts win over ``raw`` when ``host`` is set.
        resolve: substitutes ``{{variables}}`` in a string.
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


def build_headers(header: Any, resolve: Resolver) -> list[tuple[str, str]]:
    """Resolve request headers, dropping disabled ones; order and duplicates kept.

    Parameters:
        header: a list of ``{key, value, disabled}``, a mapping, or the v1
            string form ``"Key: Value\\n..."`` (lines starting ``//`` are disabled).
        resolve: substitutes ``{{variables}}``.
    """
    if header is None:
        return []
    if isinstance(header, str):
        return _parse_header_string(resolve(header))
    if isinstance(header, Mapping):
        header = [{"key": key, "value": value} for key, value in header.items()]
    if not isinstance(header, list):
        raise RequestError(f"request.header must be a list, not {type(header).__name__}")
    headers = []
    for entry in header:
        if not isinstance(entry, Mapping) or entry.get("disabled") or not entry.get("key"):
            continue
        value = entry.get("value")
        headers.append((resolve(str(entry["key"])), "" if value is None else resolve(str(value))))
    return headers


def _parse_header_string(text: str) -> list[tuple[str, str]]:
    headers = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("//") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        headers.append((key.strip(), value.strip()))
    return headers


def _build_body(body: Any, resolve: Resolver, working_dir: Path) -> _Body | None:
    if not isinstance(body, Mapping) or body.get("disabled"):
        return None
    mode = body.get("mode")
    builder = _BODY_BUILDERS.get(mode) if isinstance(mode, str) else None
    if builder is None:
        return None  # unknown mode: Postman sends no body
    return builder(body, resolve, working_dir)


def _raw_body(body: Mapping[str, Any], resolve: Resolver, _: Path) -> _Body | None:
    raw = body.get("raw")
    if raw is None or raw == "":
        return None
    text = resolve(raw) if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
    language = _dig(body, "options", "raw", "language")
    content_type = RAW_LANGUAGE_CONTENT_TYPES.get(language, "text/plain")
    return _Body(text.encode("utf-8"), "raw", content_type)


def _urlencoded_body(body: Mapping[str, Any], resolve: Resolver, _: Path) -> _Body | None:
    params = _enabled_entries(body.get("urlencoded"), "urlencoded")
    if not params:
        return None
    pairs = [
        quote(resolve(str(param.get("key") or "")), safe="")
        + "="
        + quote(resolve(_text(param.get("value"))), safe="")
        for param in params
    ]
    return _Body("&".join(pairs).encode("ascii"), "urlencoded", "application/x-www-form-urlencoded")


def _formdata_body(body: Mapping[str, Any], resolve: Resolver, working_dir: Path) -> _Body | None:
    params = _enabled_entries(body.get("formdata"), "formdata")
    if not params:
        return None
    fields: list[RequestField] = []
    for param in params:
        fields.extend(_form_fields(param, resolve, working_dir))
    content, content_type = encode_multipart_formdata(fields)
    return _Body(content, "formdata", content_type)


def _form_fields(
    param: Mapping[str, Any], resolve: Resolver, working_dir: Path
) -> Iterable[RequestField]:
    name = resolve(str(param.get("key") or ""))
    content_type = param.get("contentType") if isinstance(param.get("contentType"), str) else None
    if param.get("type") != "file":
        field_ = RequestField(name, resolve(_text(param.get("value"))).encode("utf-8"))
        field_.make_multipart(content_type=content_type)
        return [field_]
    sources = param.get("src")
    if not sources:  # Postman still sends the part, with an empty file name
        return [_file_field(name, b"", param.get("fileName") or "", content_type)]
    fields = []
    for source in sources if isinstance(sources, list) else [sources]:
        path, content = _read_file(resolve(str(source)), working_dir, f"form field `{name}`")
        given = param.get("fileName")
        filename = given if isinstance(given, str) else path.name
        fields.append(_file_field(name, content, filename, content_type))
    return fields


def _file_field(name: str, data: bytes, filename: str, content_type: str | None) -> RequestField:
    field_ = RequestField(name, data, filename=filename)
    guessed = mimetypes.guess_type(filename)[0] if filename else None
    field_.make_multipart(content_type=content_type or guessed or "application/octet-stream")
    return field_


def _file_body(body: Mapping[str, Any], resolve: Resolver, working_dir: Path) -> _Body | None:
    file = body.get("file")
    if not isinstance(file, Mapping):
        return None
    if file.get("src"):
        _, content = _read_file(resolve(str(file["src"])), working_dir, "file body")
        return _Body(content, "file")
    if isinstance(file.get("content"), str):
        return _Body(resolve(file["content"]).encode("utf-8"), "file")
    return None


def _graphql_body(body: Mapping[str, Any], resolve: Resolver, _: Path) -> _Body | None:
    graphql = body.get("graphql")
    if not isinstance(graphql, Mapping) or not (graphql.get("query") or graphql.get("variables")):
        return None
    payload: dict[str, Any] = {"query": resolve(_text(graphql.get("query")))}
    if isinstance(graphql.get("operationName"), str):
        payload["operationName"] = resolve(graphql["operationName"])
    payload["variables"] = _graphql_variables(graphql.get("variables"), resolve)
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return _Body(text.encode("utf-8"), "graphql", "application/json")


def _graphql_variables(variables: Any, resolve: Resolver) -> Any:
    if not isinstance(variables, str):
        return variables if isinstance(variables, Mapping) else {}
    try:
        return json.loads(resolve(variables))
    except ValueError:
        return {}  # Postman's editor often holds an empty or half-typed string


_BODY_BUILDERS: dict[str, Callable[[Mapping[str, Any], Resolver, Path], _Body | None]] = {
    "raw": _raw_body,
    "urlencoded": _urlencoded_body,
    "formdata": _formdata_body,
    "file": _file_body,
    "graphql": _graphql_body,
}


def _enabled_entries(entries: Any, mode: str) -> list[Mapping[str, Any]]:
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise RequestError(f"request.body.{mode} must be a list, not {type(entries).__name__}")
    return [entry for entry in entries if isinstance(entry, Mapping) and not entry.get("disabled")]


def _read_file(source: str, working_dir: Path, what: str) -> tuple[Path, bytes]:
    """Read a body file; relative paths start at ``working_dir``."""
    path = Path(source).expanduser()
    path = path if path.is_absolute() else working_dir / path
    try:
        return path, path.read_bytes()
    except FileNotFoundError as error:
        raise RequestError(f"{what}: file not found: {path}") from error
    except OSError as error:
        raise RequestError(f"{what}: cannot read {path}: {error.strerror}") from error


def _dig(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(key)
    return mapping


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _disabled_system_headers(behavior: Mapping[str, Any]) -> frozenset[str]:
    disabled = behavior.get("disabledSystemHeaders") or {}
    if isinstance(disabled, Mapping):
        return frozenset(str(name).lower() for name, off in disabled.items() if off)
    if isinstance(disabled, list):
        return frozenset(str(name).lower() for name in disabled)
    return frozenset()


def _system_headers(url: str, body: _Body | None) -> list[tuple[str, str]]:
    headers = [
        ("User-Agent", USER_AGENT),
        ("Accept", "*/*"),
        ("Cache-Control", "no-cache"),
        ("Postman-Token", str(uuid.uuid4())),
        ("Host", _authority(url)),
        ("Accept-Encoding", ACCEPT_ENCODING),
        ("Connection", "keep-alive"),
    ]
    if body is not None and body.content_type:
        headers.append(("Content-Type", body.content_type))
    if body is not None:
        headers.append(("Content-Length", str(len(body.content))))
    return headers


def _authority(url: str) -> str:
    parts = parse_url(url)
    return parts.host + (f":{parts.port}" if parts.port else "")


def _add_system_headers(
    request: OutgoingRequest, body: _Body | None, disabled: frozenset[str]
) -> None:
    for name, value in _system_headers(request.url, body):
        if name.lower() not in disabled and request.header(name) is None:
            request.headers.append((name, value))
    # A user-set multipart Content-Type without a boundary cannot be parsed by any server.
    content_type = request.header("Content-Type")
    if (
        body is not None
        and body.mode == "formdata"
        and content_type is not None
        and content_type.lower().startswith("multipart/")
        and "boundary=" not in content_type
    ):
        boundary = (body.content_type or "").partition("boundary=")[2]
        request.set_header("Content-Type", f"{content_type}; boundary={boundary}")


def build_request(
    request: Mapping[str, Any] | str,
    resolve: Resolver,
    *,
    behavior: Mapping[str, Any] | None = None,
    working_dir: Path | None = None,
) -> OutgoingRequest:
    """Build the request that goes on the wire.

    Parameters:
        request: a Postman v2.1 request object ``{method, url, header, body}``
            (possibly changed by a pre-request script), or a bare URL string.
        resolve: substitutes ``{{variables}}`` in one string.
        behavior: the item's protocolProfileBehavior (``disableBodyPruning``,
            ``disabledSystemHeaders``).
        working_dir: where relative file paths of bodies are found (default:
            the current directory at call time).

    Raises:
        RequestError: a malformed request or a body file that cannot be read.
    """
    if isinstance(request, str):
        request = {"url": request}
    if not isinstance(request, Mapping):
        raise RequestError(f"request must be an object, not {type(request).__name__}")
    behavior = behavior or {}
    method = _method(request.get("method"))
    outgoing = OutgoingRequest(method=method, url=build_url(request.get("url"), resolve))
    outgoing.headers = build_headers(request.get("header"), resolve)
    body = None
    if method not in BODYLESS_METHODS or behavior.get("disableBodyPruning"):
        body = _build_body(request.get("body"), resolve, working_dir or Path.cwd())
    if body is not None:
        outgoing.body, outgoing.body_mode = body.content, body.mode
    _add_system_headers(outgoing, body, _disabled_system_headers(behavior))
    return outgoing


def _method(method: Any) -> str:
    if method is None or method == "":
        return "GET"
    if not isinstance(method, str) or not _TOKEN.match(method):
        raise RequestError(f"request.method {method!r} is not a valid HTTP method")
    return method.upper()
