"""The run's cookie jar seen by scripts: tough-cookie's store API over ``http.cookiejar``.

Inside the sandbox, ``pm.cookies.jar()`` is a tough-cookie ``CookieJar`` whose
store calls come out to Python (``findCookies``, ``putCookie`` ...). This
module answers them from the same ``http.cookiejar.CookieJar`` that the HTTP
client sends cookies from, so a cookie a script sets is sent by the next
request, and one a server sets is visible to the next script.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from http.cookiejar import Cookie, CookieJar
from typing import Any

# The conversions are shared with the HTTP client, which exports the jar in the same form.
from runtime.cookies import JSON, cookie_from_json, cookie_to_json

__all__ = [
    "JSON",
    "ScriptCookieStore",
    "cookie_from_json",
    "cookie_to_json",
    "domain_matches",
    "path_matches",
]


def domain_matches(cookie_domain: str, domain: str) -> bool:
    """RFC 6265 domain-match, on domains without their leading dot."""
    cookie_domain = cookie_domain.lstrip(".").lower()
    domain = domain.lower()
    return domain == cookie_domain or domain.endswith("." + cookie_domain)


def path_matches(cookie_path: str, path: str) -> bool:
    """RFC 6265 path-match."""
    if not path or path == cookie_path:
        return True
    if path.startswith(cookie_path):
        return cookie_path.endswith("/") or path[len(cookie_path)] == "/"
    return False


class ScriptCookieStore:
    """Answers tough-cookie store calls from a ``CookieJar``.

    ``allowed`` may restrict which domains scripts may touch (Postman's
    cookie whitelist); by default every domain is allowed.
    """

    def __init__(self, jar: CookieJar, allowed: Callable[[str], bool] | None = None) -> None:
        self.jar = jar
        self.allowed = allowed or (lambda domain: True)

    def call(self, method: str, args: list[Any]) -> Any:
        handler = getattr(self, "_" + method, None)
        if handler is None:
            raise ValueError(f"cookie store method {method!r} is not supported")
        return handler(*args)

    def _live(self) -> list[Cookie]:
        now = time.time()
        return [c for c in self.jar if c.expires is None or c.expires > now]

    def _findCookie(self, domain: str, path: str, key: str) -> JSON | None:
        for cookie in self._live():
            same_domain = cookie.domain.lstrip(".").lower() == (domain or "").lower()
            if same_domain and cookie.path == path and cookie.name == key:
                return cookie_to_json(cookie)
        return None

    def _findCookies(self, domain: str, path: str | None = None, *_special: Any) -> list[JSON]:
        if not domain or not self.allowed(domain):
            return []
        return [
            cookie_to_json(cookie)
            for cookie in self._live()
            if domain_matches(cookie.domain, domain) and path_matches(cookie.path, path or "")
        ]

    def _putCookie(self, cookie: JSON) -> None:
        domain = str(cookie.get("domain") or "")
        if not self.allowed(domain):
            raise PermissionError(f"scripts may not set cookies for {domain}")
        self.jar.set_cookie(cookie_from_json(cookie))

    def _updateCookie(self, _old: JSON, new: JSON) -> None:
        self._putCookie(new)

    def _removeCookie(self, domain: str, path: str, key: str) -> None:
        for cookie in list(self.jar):
            same_domain = cookie.domain.lstrip(".").lower() == (domain or "").lower()
            if same_domain and cookie.path == path and cookie.name == key:
                self.jar.clear(cookie.domain, cookie.path, cookie.name)

    def _removeCookies(self, domain: str, path: str | None = None) -> None:
        for cookie in list(self.jar):
            same_domain = cookie.domain.lstrip(".").lower() == (domain or "").lower()
            if same_domain and (not path or cookie.path == path):
                self.jar.clear(cookie.domain, cookie.path, cookie.name)

    def _removeAllCookies(self) -> None:
        self.jar.clear()

    def _getAllCookies(self) -> list[JSON]:
        return [cookie_to_json(cookie) for cookie in self._live()]
