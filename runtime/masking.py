"""Masking of secret values in text, headers and report documents.

The runner already masks what it records; reporters call these functions once
more before anything leaves the process, so that a secret that slipped into a
console line, a URL or an exported variable is still hidden.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from runtime.results import JSON, Run

MASK = "********"

# Headers whose whole value is a credential: masked whatever their value is.
ALWAYS_MASKED_HEADERS = frozenset({"authorization", "proxy-authorization"})

# Headers that carry an API key or a token by their name (X-Api-Key, X-Auth-Token ...).
_CREDENTIAL_HEADER = re.compile(r"api[-_]?key|token|secret|password|credential", re.IGNORECASE)
_VARIABLE_REFERENCE = re.compile(r"\{\{[^{}]+\}\}")

# Auth parameters (in a collection's ``auth`` objects) whose value is a credential.
_SECRET_AUTH_KEY = re.compile(r"password|secret|token|privatekey|authkey|passphrase|credential")
# ... but not those that only say where or how a credential goes (OAuth 2.0's addTokenTo,
# tokenType, tokenName, accessTokenUrl, headerPrefix ...).
_SETTING_AUTH_KEY = re.compile(r"(url|type|name|to|prefix|location|method)$")


def secret_pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern matching any of the secrets, or None when there is none.

    Parameters:
        secrets: secret values; empty strings are ignored. Each secret is also
            matched in its URL-encoded forms, since secrets often travel in
            query strings and form bodies.
    """
    variants = _secret_variants(secrets)
    return _compiled(variants) if variants else None


def _secret_variants(secrets: Iterable[str]) -> tuple[str, ...]:
    variants: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        variants.update({secret, quote(secret, safe=""), quote_plus(secret, safe="")})
    # Longest first: the regex engine takes the first alternative that matches,
    # so a secret that contains another one is masked whole.
    return tuple(sorted(variants, key=lambda value: (-len(value), value)))


def _compiled(variants: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(value) for value in variants))


def _mask_found(text: str, variants: tuple[str, ...]) -> str:
    """``text`` masked; compiled only when a secret is in it.

    Every request has secrets of its own (its Postman-Token header counts as
    a credential), and compiling their pattern took 50 us a request where
    most texts hold none of them.
    """
    if not text or not any(variant in text for variant in variants):
        return text
    return _compiled(variants).sub(MASK, text)


def mask(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of every secret in ``text`` by ``********``.

    Parameters:
        text: any text (a URL, a body, a console line).
        secrets: the values to hide; empty values are ignored.
    """
    return _mask_found(text, _secret_variants(secrets))


def _mask_with(text: str, pattern: re.Pattern[str] | None) -> str:
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def mask_authorization(value: str) -> str:
    """Mask an Authorization value, keeping its scheme (``Bearer ********``).

    The scheme says which auth was used, which helps reading a report, and it
    is never secret; everything after it is.
    """
    scheme, _, credentials = value.strip().partition(" ")
    if not credentials:
        return MASK
    return f"{scheme} {MASK}"


def mask_headers(
    headers: Iterable[tuple[str, str]], secrets: Iterable[str]
) -> list[tuple[str, str]]:
    """Headers with credentials masked.

    Authorization and Proxy-Authorization are always masked (after their
    scheme). Any other header, API-key headers and cookies included, has its
    secret values masked: a header value that is not a known secret is shown,
    so that reports stay useful for debugging.

    Parameters:
        headers: (name, value) pairs, in order.
        secrets: the values to hide wherever they appear.
    """
    variants = _secret_variants(secrets)
    masked: list[tuple[str, str]] = []
    for name, value in headers:
        if name.lower() in ALWAYS_MASKED_HEADERS:
            masked.append((name, mask_authorization(value)))
        elif _CREDENTIAL_HEADER.search(name) and value:
            masked.append((name, MASK))
        else:
            masked.append((name, _mask_found(value, variants)))
    return masked


def credential_values(headers: Iterable[tuple[str, str]]) -> set[str]:
    """The credentials in request headers, to mask wherever else they appear.

    Authorization and Proxy-Authorization give what follows their scheme;
    API-key and token headers (``X-Api-Key``, ``X-Auth-Token`` ...) their value.
    Values that are only a variable reference reveal nothing and are left out.

    Parameters:
        headers: (name, value) pairs.
    """
    found: set[str] = set()
    for name, value in headers:
        if not isinstance(value, str) or _VARIABLE_REFERENCE.fullmatch(value.strip()):
            continue
        if name.lower() in ALWAYS_MASKED_HEADERS:
            scheme, _, credentials = value.strip().partition(" ")
            found.add(credentials.strip() or scheme)
        elif _CREDENTIAL_HEADER.search(name):
            found.add(value.strip())
    found.discard("")
    return found


def collection_secrets(document: Any) -> set[str]:
    """Every credential written into collection JSON, to mask in every copy a report keeps.

    The values of secret auth parameters, of credential headers (in ``header``
    lists) and of ``secret``-typed variables (in ``variable`` or ``values``
    lists), wherever they are in the document (collection, folders, requests,
    saved responses). Variable references (``{{token}}``) are left out.

    Parameters:
        document: collection JSON (or any part of it).
    """
    found: set[str] = set()
    _collect_secrets(document, found)
    return found


def _collect_secrets(document: Any, found: set[str]) -> None:
    if isinstance(document, list):
        for item in document:
            _collect_secrets(item, found)
        return
    if not isinstance(document, dict):
        return
    for key, item in document.items():
        if key == "auth" and isinstance(item, dict):
            masked = _mask_auth_object(item)
            found.update(_differences(item, masked))
        elif key == "header" and isinstance(item, list):
            pairs = [
                (str(h.get("key", "")), str(h.get("value") or ""))
                for h in item
                if isinstance(h, dict)
            ]
            found.update(credential_values(pairs))
        elif key in ("variable", "values") and isinstance(item, list):
            found.update(secret_variable_values(item))
        _collect_secrets(item, found)


def _differences(original: Any, masked: Any) -> set[str]:
    """The strings of ``original`` that masking replaced in ``masked``."""
    if isinstance(original, str):
        return {original} if masked == MASK and original != MASK else set()
    if isinstance(original, dict) and isinstance(masked, dict):
        return {v for k in original for v in _differences(original[k], masked.get(k))}
    if isinstance(original, list) and isinstance(masked, list):
        return {v for a, b in zip(original, masked, strict=False) for v in _differences(a, b)}
    return set()


def mask_json(value: Any, secrets: Iterable[str]) -> Any:
    """A copy of a JSON document with the secrets masked in every string.

    Parameters:
        value: a document made of dicts, lists, strings, numbers, booleans, None.
        secrets: the values to hide; keys of objects are left as they are.
    """
    return _mask_json_with(value, secret_pattern(secrets))


def _mask_json_with(value: Any, pattern: re.Pattern[str] | None) -> Any:
    if isinstance(value, str):
        return _mask_with(value, pattern)
    if isinstance(value, dict):
        return {key: _mask_json_with(item, pattern) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_json_with(item, pattern) for item in value]
    return value


def secret_variable_values(variables: Iterable[JSON]) -> set[str]:
    """Values of the variables of ``type: secret`` in a list of Postman variables."""
    found: set[str] = set()
    for variable in variables:
        if not isinstance(variable, dict) or variable.get("type") != "secret":
            continue
        value = variable.get("value")
        if value is not None and str(value):
            found.add(str(value))
    return found


def run_secrets(run: Run) -> set[str]:
    """Every secret a reporter can learn from a finished run (secret variables)."""
    return secret_variable_values([*run.environment, *run.globals])


def mask_auth_params(document: Any) -> Any:
    """A copy of collection JSON with the credentials of every ``auth`` object masked.

    Postman stores auth as ``{"type": "basic", "basic": [{"key": "password",
    "value": "..."}]}`` (v2.1) or ``{"basic": {"password": "..."}}`` (v2.0).
    Values that are only a variable reference (``{{token}}``) are kept, since
    they reveal nothing and tell the reader where the value came from.
    """
    if isinstance(document, list):
        return [mask_auth_params(item) for item in document]
    if not isinstance(document, dict):
        return document
    copied: dict[str, Any] = {}
    for key, item in document.items():
        if key == "auth" and isinstance(item, dict):
            copied[key] = _mask_auth_object(item)
        else:
            copied[key] = mask_auth_params(item)
    return copied


def _mask_auth_object(auth: JSON) -> JSON:
    masked: JSON = {}
    for key, params in auth.items():
        if key == "type":
            masked[key] = params
        elif isinstance(params, list):
            masked[key] = [_mask_auth_param(param) for param in params]
        elif isinstance(params, dict):
            masked[key] = {name: _masked_if_secret(name, value) for name, value in params.items()}
        else:
            masked[key] = params
    return masked


def _mask_auth_param(param: Any) -> Any:
    if not isinstance(param, dict) or "key" not in param:
        return param
    copied = dict(param)
    copied["value"] = _masked_if_secret(str(param["key"]), param.get("value"))
    return copied


def _masked_if_secret(name: str, value: Any) -> Any:
    if not isinstance(value, str) or not value:
        return value
    if re.fullmatch(r"\{\{[^{}]+\}\}", value.strip()):
        return value
    # apikey auth keeps the credential in a parameter named "value".
    lowered = name.lower()
    credential = _SECRET_AUTH_KEY.search(lowered) and not _SETTING_AUTH_KEY.search(lowered)
    if name == "value" or credential:
        return MASK
    return value


def state_secrets(states: Iterable[JSON]) -> set[str]:
    """Values of secret-typed variables in run states (``RunState`` JSON), every scope."""
    found: set[str] = set()
    for state in states:
        if not isinstance(state, dict):
            continue
        if isinstance(state.get("state"), dict):  # a prepared step keeps its state inside
            found |= state_secrets([state["state"]])
        for scope in ("environment", "globals", "collection_variables", "local"):
            values = state.get(scope)
            found.update(secret_variable_values(values if isinstance(values, list) else []))
    return found


def masked_script_lines(document: Any, secrets: Iterable[str]) -> list[list[Any]]:
    """The script lines of collection JSON that hold a secret, masked.

    A process that has a collection but not the secrets a run learned (a
    distributed run's waiter) applies these with ``with_masked_script_lines``
    to mask its copy as the run's own report would.

    Returns:
        ``[node path, event index, line index, masked line]`` entries; the node
        path is the list of ``item`` indices from the collection's root.
    """
    pattern = secret_pattern(secrets)
    if pattern is None:
        return []
    found: list[list[Any]] = []
    for path, node in _nodes(document, []):
        for event_index, event in enumerate(node.get("event") or []):
            for line_index, line in enumerate(_script_lines(event)):
                masked = _mask_with(line, pattern)
                if masked != line:
                    found.append([path, event_index, line_index, masked])
    return found


def with_masked_script_lines(document: Any, lines: Iterable[list[Any]]) -> Any:
    """A copy of collection JSON with ``masked_script_lines`` entries applied."""
    copied = json.loads(json.dumps(document))
    for path, event_index, line_index, masked in lines:
        node = copied
        for index in path:
            node = node["item"][index]
        script = node["event"][event_index]["script"]
        if isinstance(script.get("exec"), list):
            script["exec"][line_index] = masked
        else:
            script["exec"] = masked
    return copied


def _nodes(node: Any, path: list[int]) -> Iterable[tuple[list[int], JSON]]:
    if not isinstance(node, dict):
        return
    yield path, node
    for index, child in enumerate(node.get("item") or []):
        yield from _nodes(child, [*path, index])


def _script_lines(event: Any) -> list[str]:
    script = event.get("script") if isinstance(event, dict) else None
    source = script.get("exec") if isinstance(script, dict) else None
    if isinstance(source, str):
        return [source]
    if not isinstance(source, list):
        return []
    return [line if isinstance(line, str) else "" for line in source]  # indices stay
