"""Upgrading older collection formats to v2.1, the one the model parses.

* v1 collections (top-level ``requests``, ``order``, ``folders``) are converted
  as Postman's transformer does: folders first (in ``folders_order``), then the
  root requests (in ``order``); ``headers`` strings, ``dataMode`` bodies,
  ``preRequestScript``/``tests`` strings and legacy ``currentHelper`` auth
  become their v2.1 forms.
* v2.0 collections differ from v2.1 where it matters in auth parameters given
  as objects (v2.1 wants ``[{key, value, type}]``) and in url variables keyed
  by ``id``; :func:`normalise_v20` fixes both in place, and leaves v2.1 as is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from pmrunner.errors import CollectionFormatError
from runtime.model import JSON

__all__ = ["SCHEMA_V21", "convert_v1", "is_v1_collection", "normalise_v20"]

SCHEMA_V21 = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"


def is_v1_collection(data: Mapping[str, Any]) -> bool:
    """Whether ``data`` looks like v1: no ``info``, but ``requests``, ``order`` or ``folders``."""
    return "info" not in data and any(key in data for key in ("requests", "order", "folders"))


def normalise_v20(collection: JSON) -> None:
    """v2.0 → v2.1 where it matters: auth parameter objects, url variables keyed ``id``."""
    _normalise_auth(collection.get("auth"))
    stack = [collection.get("item")]
    while stack:
        items = stack.pop()
        for item in items if isinstance(items, list) else ():
            if not isinstance(item, dict):
                continue
            _normalise_auth(item.get("auth"))
            stack.append(item.get("item"))
            request = item.get("request")
            if isinstance(request, dict):
                _normalise_auth(request.get("auth"))
                _normalise_url_variables(request.get("url"))


def _normalise_auth(auth: Any) -> None:
    if not isinstance(auth, dict):
        return
    for name, params in auth.items():
        if name != "type" and isinstance(params, dict):
            auth[name] = _auth_params(params)


def _auth_params(params: Mapping[str, Any]) -> list[JSON]:
    return [
        {"key": key, "value": value, "type": _param_type(value)} for key, value in params.items()
    ]


def _param_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return "string" if isinstance(value, str) else "any"


def _normalise_url_variables(url: Any) -> None:
    if not isinstance(url, dict) or not isinstance(url.get("variable"), list):
        return
    for variable in url["variable"]:
        if isinstance(variable, dict) and "id" in variable and "key" not in variable:
            variable["key"] = variable.pop("id")


# --- v1 collections ------------------------------------------------------------------------

_V1_AUTH_TYPES = {
    "basicAuth": "basic",
    "bearerAuth": "bearer",
    "digestAuth": "digest",
    "hawkAuth": "hawk",
    "oAuth1": "oauth1",
    "oAuth2": "oauth2",
    "awsSigV4": "awsv4",
    "ntlmAuth": "ntlm",
}
_V1_AUTH_RENAMES = {
    "hawk_id": "authId",
    "hawk_key": "authKey",
    "ext": "extraData",
    "app": "appId",
    "dlg": "delegation",
    "nonce_count": "nonceCount",
    "header": "addParamsToHeader",
    "includeEmpty": "addEmptyParamsToSign",
}
_V1_AUTH_BOOKKEEPING = {"id", "saveToRequest", "saveHelperData", "showPassword"}
_V1_BODY_MODES = {"urlencoded": "urlencoded", "params": "formdata", "raw": "raw", "binary": "file"}


def _list(value: Any) -> list[Any]:
    """A list as it is; anything else counts as empty, as Postman's converter ignores it."""
    return value if isinstance(value, list) else []


def _v1_list(v1: JSON, field: str) -> list[JSON]:
    value = v1.get(field)
    if value is None:
        return []
    if not isinstance(value, list):
        raise CollectionFormatError(f"v1 collection: '{field}' must be a list")
    return [entry for entry in value if isinstance(entry, dict) and "id" in entry]


def convert_v1(v1: JSON) -> JSON:
    """A v1 collection as v2.1: folders first (in ``folders_order``), then root requests."""
    requests = {str(r["id"]): r for r in _v1_list(v1, "requests")}
    folders = {str(f["id"]): f for f in _v1_list(v1, "folders")}
    subfolders = {str(i) for f in folders.values() for i in _list(f.get("folders_order"))}
    root_ids = [str(i) for i in _list(v1.get("folders_order")) or folders]
    items = [
        _v1_folder(folders[folder_id], folders, requests, ())
        for folder_id in dict.fromkeys(root_ids)
        if folder_id in folders and folder_id not in subfolders
    ]
    items += [_v1_item(requests[str(i)]) for i in _list(v1.get("order")) if str(i) in requests]
    info = {
        "_postman_id": v1.get("id"),
        "name": v1.get("name") or "Collection",
        "description": v1.get("description") or "",
        "schema": SCHEMA_V21,
    }
    converted: JSON = {"info": info, "item": items}
    _add_v1_common(converted, v1)
    if isinstance(v1.get("variables"), list):
        converted["variable"] = v1["variables"]
    return converted


def _add_v1_common(target: JSON, entity: JSON) -> None:
    """Auth and scripts, which v1 collections, folders and requests share."""
    auth = _v1_auth(entity)
    if auth:
        target["auth"] = auth
    events = _v1_events(entity)
    if events:
        target["event"] = events


def _v1_folder(
    folder: JSON, folders: dict[str, JSON], requests: dict[str, JSON], ancestors: tuple[str, ...]
) -> JSON:
    folder_id = str(folder["id"])
    ancestors = (*ancestors, folder_id)
    children = [
        _v1_folder(folders[str(i)], folders, requests, ancestors)
        for i in _list(folder.get("folders_order"))
        if str(i) in folders and str(i) not in ancestors  # a cycle would never end
    ]
    children += [
        _v1_item(requests[str(i)]) for i in _list(folder.get("order")) if str(i) in requests
    ]
    converted: JSON = {
        "id": folder_id,
        "name": folder.get("name") or "Folder",
        "description": folder.get("description") or "",
        "item": children,
    }
    _add_v1_common(converted, folder)
    return converted


def _v1_item(request: JSON) -> JSON:
    converted_request: JSON = {
        "method": str(request.get("method") or "GET").upper(),
        "header": _v1_headers(request),
        "url": _v1_url(request),
    }
    body = _v1_body(request)
    if body:
        converted_request["body"] = body
    auth = _v1_auth(request)
    if auth:
        converted_request["auth"] = auth
    item: JSON = {
        "id": str(request["id"]),
        "name": request.get("name") or "",
        "description": request.get("description") or "",
        "request": converted_request,
    }
    events = _v1_events(request)
    if events:
        item["event"] = events
    if isinstance(request.get("protocolProfileBehavior"), dict):
        item["protocolProfileBehavior"] = request["protocolProfileBehavior"]
    return item


def _v1_headers(request: JSON) -> list[JSON]:
    """``headerData`` entries first, then lines of the ``headers`` string ("K: V\\n").

    A key starting with ``//`` marks a disabled header, as the v1 app wrote them.
    """
    if isinstance(request.get("headers"), list):
        return list(request["headers"])
    headers: list[JSON] = []
    for entry in _list(request.get("headerData")):
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            headers.append(_v1_header(entry["key"], entry.get("value"), entry))
    seen = {header["key"] for header in headers}
    for line in str(request.get("headers") or "").splitlines():
        key, colon, value = line.partition(":")
        if colon and key.strip():
            header = _v1_header(key.strip(), value.strip(), {})
            if header["key"] not in seen:
                headers.append(header)
    return headers


def _v1_header(key: str, value: Any, entry: JSON) -> JSON:
    header = {k: v for k, v in entry.items() if k != "enabled"}
    header.update(key=key, value="" if value is None else value)
    if key.startswith("//") or entry.get("enabled") is False:
        header.update(key=key.removeprefix("//").strip(), disabled=True)
    return header


def _v1_url(request: JSON) -> str | JSON:
    raw = str(request.get("url") or "")
    variables: list[JSON] = [
        {"key": v.get("key") or v.get("id"), "value": v.get("value")}
        for v in _list(request.get("pathVariableData"))
        if isinstance(v, dict)
    ]
    named = {variable["key"] for variable in variables}
    path_variables = request.get("pathVariables")
    if isinstance(path_variables, dict):
        variables += [{"key": k, "value": v} for k, v in path_variables.items() if k not in named]
    if not variables:
        return raw
    return {**_split_url(raw), "variable": variables}


_URL_PARTS = re.compile(
    r"^(?:(?P<protocol>[A-Za-z][\w+.-]*)://)?(?P<host>[^/?#]*)(?P<path>[^?#]*)"
    r"(?:\?(?P<query>[^#]*))?(?:#(?P<hash>.*))?$",
    re.DOTALL,
)


def _split_url(raw: str) -> JSON:
    """A raw URL as a v2 url object (host, port, path, query), text left undecoded."""
    parts = _URL_PARTS.match(raw)
    assert parts is not None  # every group is optional
    url: JSON = {"raw": raw}
    if parts["protocol"]:
        url["protocol"] = parts["protocol"]
    host = parts["host"].rpartition("@")[2]
    name, colon, port = host.rpartition(":")
    if colon and (port.isdigit() or port.startswith("{{")):
        url["port"], host = port, name
    url["host"] = host.split(".") if host else []
    url["path"] = [segment for segment in parts["path"].split("/")[1:]]
    if parts["query"]:
        url["query"] = [_query_param(pair) for pair in parts["query"].split("&")]
    if parts["hash"]:
        url["hash"] = parts["hash"]
    return url


def _query_param(pair: str) -> JSON:
    key, equals, value = pair.partition("=")
    return {"key": key, "value": value if equals else None}


def _v1_body(request: JSON) -> JSON | None:
    """The v2 body of a v1 request (``dataMode`` with ``data`` or ``rawModeData``)."""
    mode_name = request.get("dataMode")
    data, raw_data = request.get("data"), request.get("rawModeData")
    if isinstance(raw_data, list) and len(raw_data) == 1 and isinstance(raw_data[0], str):
        raw_data = raw_data[0]
    if mode_name == "graphql":
        return {"mode": "graphql", "graphql": request.get("graphqlModeData") or {}}
    mode = _V1_BODY_MODES.get(str(mode_name))
    if mode is None:
        if not data and not raw_data:
            return None
        fields = data if data else raw_data
        mode = "formdata" if not isinstance(raw_data, str) and isinstance(fields, list) else "raw"
    body: JSON = {"mode": mode}
    if mode == "raw":
        body["raw"] = (
            raw_data if isinstance(raw_data, str) else data if isinstance(data, str) else ""
        )
    elif mode == "file":
        body["file"] = {"src": raw_data if isinstance(raw_data, str) else None}
    else:
        body[mode] = [_v1_form_param(p) for p in _list(data or raw_data) if _has_key(p)]
    if request.get("dataDisabled"):
        body["disabled"] = True
    return body


def _has_key(param: Any) -> bool:
    return isinstance(param, dict) and bool(param.get("key"))


def _v1_form_param(param: JSON) -> JSON:
    converted = {k: v for k, v in param.items() if k != "enabled"}
    if converted.get("type") == "file" and "value" in converted:
        value = converted.pop("value")
        converted["src"] = value if isinstance(value, str) else None
    if param.get("enabled") is False:
        converted["disabled"] = True
    return converted


def _v1_events(entity: JSON) -> list[JSON]:
    """``events`` when present, else the ``preRequestScript`` and ``tests`` strings."""
    events = entity.get("events")
    if isinstance(events, list) and events:
        return [event for event in events if isinstance(event, dict)]
    converted = []
    for listen, field in (("prerequest", "preRequestScript"), ("test", "tests")):
        source = entity.get(field)
        if source:
            lines = source.split("\n") if isinstance(source, str) else source
            converted.append(
                {"listen": listen, "script": {"type": "text/javascript", "exec": lines}}
            )
    return converted


def _v1_auth(entity: JSON) -> JSON | None:
    """``auth`` when present, else the legacy ``currentHelper`` + ``helperAttributes``."""
    if isinstance(entity.get("auth"), dict):
        return dict(entity["auth"])
    helper = entity.get("currentHelper")
    if not helper or helper == "normal":
        return None
    auth_type = _V1_AUTH_TYPES.get(str(helper), str(helper))
    attributes = entity.get("helperAttributes")
    if isinstance(attributes, str):  # some old exports hold them as a JSON string
        try:
            attributes = json.loads(attributes)
        except ValueError:
            attributes = None
    if not isinstance(attributes, dict):
        return {"type": auth_type}
    params = {
        _V1_AUTH_RENAMES.get(str(key), str(key)): value
        for key, value in attributes.items()
        if key not in _V1_AUTH_BOOKKEEPING
    }
    return {"type": auth_type, auth_type: _auth_params(params)}
