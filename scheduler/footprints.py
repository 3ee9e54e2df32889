"""What one request touches: the variables and cookies it reads and writes, its host, its method.

The planner orders requests by these footprints, so every rule here errs on
the side of "touches more": whatever cannot be told from the text is taken
to touch everything (``ANY``).

Variables are read by ``{{name}}`` in the request (URL, headers, body, auth)
and by scripts (``pm.environment``, ``pm.globals``, ``pm.collectionVariables``,
``pm.variables``, ``pm.iterationData``, legacy ``environment``, ``globals``,
``data``, ``postman.get*Variable``), and written by their ``set``, ``unset``
and ``clear`` and legacy ``postman.set*Variable`` / ``clear*Variable``. A name
that is not a plain string literal (a computed name, a template string, a
concatenation), ``replaceIn`` / ``toObject``, and a scope object used any
other way (an alias, ``pm["environment"]``, ``eval``) count as ``ANY``.

Cookies live in one jar per run, and every response can write it: a
request reads and writes the jar for its host's *cookie scope* (an IP
address, else the last two labels of the name: cookies of
``a.example.com`` may be sent to ``b.example.com``; ports do not separate
cookies). ``protocolProfileBehavior.disableCookies`` takes a request out of
the jar. Scripts read it through ``pm.cookies``, ``postman.getResponseCookie``
and ``responseCookies`` (the request's scope), and read and write any scope
through ``pm.cookies.jar()`` and ``pm.sendRequest``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from runtime.model import Item
from runtime.urls import normalize_url, parse_url

ANY = "*"  # stands for "any variable" or "any cookie scope" when it cannot be told
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_TEMPLATE = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_SCOPE = (
    r"(?:pm\s*\.\s*(?:environment|globals|collectionVariables|variables|iterationData)"
    r"|\benvironment|\bglobals)"
)
# A plain string literal as the whole first argument: `("name")` or `("name", ...)`.
_LITERAL = r"""\(\s*(['"`])((?:(?!\$\{)[^'"`\\])+)\1\s*(?=[,)])"""
_WRITE_LITERAL = re.compile(_SCOPE + r"\s*\.\s*(?:set|unset)\s*" + _LITERAL)
_LEGACY_WRITE = re.compile(
    r"postman\s*\.\s*(?:set|clear)(?:Environment|Global)Variable\s*" + _LITERAL
)
_WRITE_CALL = re.compile(
    _SCOPE + r"\s*\.\s*(?:set|unset|clear)\s*\(|postman\s*\.\s*(?:set|clear)\w*Variables?\s*\("
)
_READ_LITERAL = re.compile(_SCOPE + r"\s*\.\s*(?:get|has)\s*" + _LITERAL)
_READ_CALL = re.compile(_SCOPE + r"\s*\.\s*(?:get|has)\s*\(")
_READ_ANY = re.compile(
    r"\.\s*(?:replaceIn|toObject|toJSON)\s*\("
    r"|\b(?:environment|globals|data)\s*[.\[]"
    r"|postman\s*\.\s*get\w*Variable"
)
# A scope object used other than by a direct call of its methods: it may be aliased.
_SCOPE_USE = re.compile(
    _SCOPE + r"(?!\s*\.\s*(?:get|has|set|unset|clear|replaceIn|toObject|toJSON)\b)"
)
_OPAQUE = re.compile(r"\bpm\s*\[|\beval\s*\(|\bFunction\s*\(|[=(,:]\s*pm\s*[;,)\n]|\bwith\s*\(")
_COOKIE_READ = re.compile(
    r"pm\s*\.\s*cookies\b(?!\s*\.\s*jar\b)|getResponseCookie|\bresponseCookies\b"
)
_COOKIE_JAR = re.compile(r"pm\s*\.\s*cookies\s*\.\s*jar\s*\(|\bsendRequest\s*\(")
_REQUEST_CHANGE = re.compile(
    r"\b(?:pm\s*\.\s*)?request\s*\.\s*(?:url|removeQueryParams|addQueryParams)\b\s*(?:=[^=]|\.)"
)


@dataclass
class Footprint:
    """What one item touches, as far as can be told statically.

    reads / writes: variable names (``ANY``: possibly any);
    cookie_reads / cookie_writes: cookie scopes (``ANY``: possibly any);
    host: the request's host (None: unknown before it runs); safe: its method.
    """

    reads: set[str]
    writes: set[str]
    host: str | None
    safe: bool
    cookie_reads: set[str] = field(default_factory=set)
    cookie_writes: set[str] = field(default_factory=set)

    @property
    def stateful(self) -> bool:
        return bool(self.writes) or bool(self.cookie_writes) or not self.safe


def overlap(a: set[str], b: set[str]) -> bool:
    """Whether two sets of names (or scopes) may share one, ``ANY`` included."""
    if not a or not b:
        return False
    return ANY in a or ANY in b or bool(a & b)


def script_code(item: Item) -> str:
    """Every script that runs for ``item`` (its folders' and collection's too)."""
    return "\n".join(s.source for kind in ("prerequest", "test") for s in item.script_chain(kind))


def variable_writes(code: str) -> set[str]:
    """Variables a script may write; ``ANY`` when a name cannot be told."""
    writes = {match[1] for match in _WRITE_LITERAL.findall(code)}
    writes |= {match[1] for match in _LEGACY_WRITE.findall(code)}
    literal = len(_WRITE_LITERAL.findall(code)) + len(_LEGACY_WRITE.findall(code))
    if len(_WRITE_CALL.findall(code)) > literal or _opaque(code):
        writes.add(ANY)
    return writes


def variable_reads(code: str) -> set[str]:
    """Variables a script may read; ``ANY`` when a name cannot be told."""
    reads = {match[1] for match in _READ_LITERAL.findall(code)}
    if len(_READ_CALL.findall(code)) > len(_READ_LITERAL.findall(code)):
        reads.add(ANY)
    if _READ_ANY.search(code) or _opaque(code):
        reads.add(ANY)
    return reads


def _opaque(code: str) -> bool:
    return bool(_OPAQUE.search(code) or _SCOPE_USE.search(code))


def cookie_scope(host: str | None) -> str:
    """The scope a host's cookies are shared in: its IP, else its last two labels."""
    if not host:
        return ANY
    name = host.strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return ".".join(name.split(".")[-2:])


def footprint(
    item: Item, resolve: Callable[[str], str], written: set[str] | None = None
) -> Footprint:
    """Reads, writes, host and method safety of one item (its folders' scripts included).

    Parameters:
        item: the request item.
        resolve: resolves ``{{variables}}`` with the run's initial values.
        written: variables any script of the run may write; a host read from
            one of them is unknown until the run gets there.
    """
    code = script_code(item)
    request_text = json.dumps([item.request, *(node.auth for node in item.parents if node.auth)])
    reads = {name.strip() for name in _TEMPLATE.findall(request_text)} | variable_reads(code)
    reads |= {name.strip() for name in _TEMPLATE.findall(code)}
    host = _host(item, resolve, written or set())
    scope = cookie_scope(host)
    cookie_reads: set[str] = set()
    cookie_writes: set[str] = set()
    if not item.effective_behavior().get("disableCookies"):
        cookie_reads.add(scope)
        cookie_writes.add(scope)
    if _COOKIE_READ.search(code):
        cookie_reads.add(scope)
    if _COOKIE_JAR.search(code) or _opaque(code):
        cookie_reads.add(ANY)
        cookie_writes.add(ANY)
    method = str(item.request.get("method") or "GET").upper()
    return Footprint(
        reads, variable_writes(code), host, method in SAFE_METHODS, cookie_reads, cookie_writes
    )


def _host(item: Item, resolve: Callable[[str], str], written: set[str]) -> str | None:
    """The request's host as Postman will send it; None when a script may change it."""
    url = item.request.get("url")
    raw = url.get("raw") if isinstance(url, dict) else url
    if not isinstance(raw, str):
        return None
    used = {name.strip() for name in _TEMPLATE.findall(raw)}
    if overlap(used, written) or _REQUEST_CHANGE.search(script_code(item)):
        return None
    text = resolve(raw)
    if "{{" in text or not text.strip():
        return None
    try:
        return parse_url(normalize_url(text)).host or None
    except ValueError:
        return None
