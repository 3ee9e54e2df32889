"""Turn a Postman v2.1 request object into an ``OutgoingRequest``.

The builder does what Postman's runtime does before a request leaves:
variables are substituted in every part, the URL is rebuilt and
percent-encoded, disabled headers and parameters are dropped, the body is
encoded for its mode, and Postman's system headers are added.

Choices that follow Postman (postman-collection and postman-runtime):

- The method is upper-cased, whatever case the collection uses
  (``Request`` in postman-collection upper-cases it), so custom methods such
  as ``purge`` or ``Report`` go out as ``PURGE`` and ``REPORT``.
- URLs are joined, parsed and encoded by ``runtime.urls`` (its names are
  importable from here too).
- urlencoded bodies are percent-encoded as RFC 3986 (space is ``%20``);
  parameters keep their order and duplicates.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from urllib3.fields import RequestField
from urllib3.filepost import encode_multipart_formdata

from pmrunner.errors import RequestError
from pmrunner.structured_input import user_path
from runtime.exchange import OutgoingRequest
from runtime.urls import (
    Resolver,
    UrlParts,
    build_url,
    encode_url,
    normalize_url,
    parse_url,
    percent_encode,
    url_authority,
)

__all__ = [
    "ACCEPT_ENCODING",
    "BODYLESS_METHODS",
    "RAW_LANGUAGE_CONTENT_TYPES",
    "USER_AGENT",
    "Resolver",
    "UrlParts",
    "build_headers",
    "build_request",
    "build_url",
    "encode_url",
    "normalize_url",
    "parse_url",
    "percent_encode",
]

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


@dataclass
class _Body:
    content: bytes
    mode: str
    content_type: str | None = None


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
    path = user_path(source)
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
        ("Host", url_authority(url)),
        ("Accept-Encoding", ACCEPT_ENCODING),
        ("Connection", "keep-alive"),
    ]
    if body is not None and body.content_type:
        headers.append(("Content-Type", body.content_type))
    if body is not None:
        headers.append(("Content-Length", str(len(body.content))))
    return headers


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
    _userinfo_as_basic_auth(outgoing)
    body = None
    if method not in BODYLESS_METHODS or behavior.get("disableBodyPruning"):
        body = _build_body(request.get("body"), resolve, working_dir or Path.cwd())
    if body is not None:
        outgoing.body, outgoing.body_mode = body.content, body.mode
    _add_system_headers(outgoing, body, _disabled_system_headers(behavior))
    return outgoing


def _userinfo_as_basic_auth(request: OutgoingRequest) -> None:
    """Send a URL's ``user:password@`` as basic auth, and the URL without it, as Postman does.

    The userinfo is percent-decoded; an Authorization header the request
    already has wins. The password is masked in reports.
    """
    parts = parse_url(request.url)
    if parts.user is None and parts.password is None:
        return
    user, password = unquote(parts.user or ""), unquote(parts.password or "")
    parts.user = parts.password = None
    request.url = encode_url(parts)
    if (user or password) and request.header("Authorization") is None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        request.headers.append(("Authorization", f"Basic {token}"))
        request.secrets.update(value for value in (password, token) if value)


def _method(method: Any) -> str:
    if method is None or method == "":
        return "GET"
    if not isinstance(method, str) or not _TOKEN.match(method):
        raise RequestError(f"request.method {method!r} is not a valid HTTP method")
    return method.upper()
