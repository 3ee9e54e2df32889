"""The run's cookie jar: conversions to and from JSON, and questions asked of the jar.

The jar is a ``http.cookiejar.CookieJar`` (the one of the HTTP client's
``requests.Session``). Outside it, a cookie travels in one JSON form,
tough-cookie's (the library behind Postman's cookie jar): the script sandbox
answers tough-cookie store calls with it, the client exports and imports it to
hand the jar from one step of a run to the next, and ``cookies_for_url``
lists the cookies a request would carry in it.

The form: ``{key, value, expires, domain, path, secure, httpOnly, hostOnly}``
plus ``extensions`` (``["SameSite=Lax", "Priority"]``) when the cookie has
other attributes. ``expires`` is an ISO 8601 time in UTC, or ``"Infinity"``
for a session cookie; ``domain`` has no leading dot. Reading, ``name`` is
accepted for ``key``, and ``expires`` may also be seconds or milliseconds
since the epoch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.request import Request as UrllibRequest

import requests
from requests.cookies import get_cookie_header
from requests.structures import CaseInsensitiveDict

from pmrunner.errors import InputError

JSON = dict[str, Any]

_LATEST_EXPIRY = "9999-12-31T23:59:59Z"
# Above this an ``expires`` number is milliseconds (JavaScript's Date), not seconds.
_MILLISECONDS_FROM = 10**11


def cookie_to_json(cookie: Cookie) -> JSON:
    """A cookie in tough-cookie's JSON form (see the module docstring).

    Parameters:
        cookie: a cookie from the jar.
    """
    data: JSON = {
        "key": cookie.name,
        "value": cookie.value or "",
        "expires": _expiry_text(cookie.expires),
        "domain": cookie.domain.lstrip("."),
        "path": cookie.path,
        "secure": bool(cookie.secure),
        "httpOnly": _is_http_only(cookie),
        "hostOnly": not cookie.domain_specified,
    }
    extensions = _extensions(cookie)
    if extensions:
        data["extensions"] = extensions
    return data


def cookie_from_json(data: Mapping[str, Any]) -> Cookie:
    """A jar cookie from tough-cookie's (or Postman's) JSON form.

    Parameters:
        data: the cookie; a missing ``hostOnly`` means a domain cookie, a
            missing ``expires`` a session cookie, a missing ``path`` ``/``.
    """
    domain = str(data.get("domain") or "")
    host_only = bool(data.get("hostOnly", False))
    expires = _expiry_seconds(data.get("expires"))
    rest = _rest_attributes(data.get("extensions"))
    if data.get("httpOnly"):
        rest.setdefault("HttpOnly", None)
    return Cookie(
        version=0,
        name=str(data.get("key") or data.get("name") or ""),
        value=str(data.get("value") or ""),
        port=None,
        port_specified=False,
        # The jar keeps domain cookies with a leading dot, host-only ones without.
        domain=domain if host_only or not domain else "." + domain.lstrip("."),
        domain_specified=not host_only,
        domain_initial_dot=not host_only,
        path=str(data.get("path") or "/"),
        path_specified=True,
        secure=bool(data.get("secure", False)),
        expires=expires,
        discard=expires is None,
        comment=None,
        comment_url=None,
        rest=rest,  # type: ignore[arg-type]  # the jar itself keeps None for flag attributes
    )


def _expiry_text(expires: int | None) -> str:
    if expires is None:
        return "Infinity"
    try:
        moment = datetime.fromtimestamp(expires, UTC)
    except (OverflowError, OSError, ValueError):  # a Max-Age beyond the year 9999
        return _LATEST_EXPIRY
    return moment.isoformat().replace("+00:00", "Z")


def _expiry_seconds(value: Any) -> int | None:
    if value in (None, "", "Infinity"):
        return None
    if isinstance(value, int | float):
        return int(value / 1000) if value > _MILLISECONDS_FROM else int(value)
    try:
        return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def _is_http_only(cookie: Cookie) -> bool:
    # The jar keeps attribute names as the server wrote them; browsers ignore their case.
    return any(name.lower() == "httponly" for name in _rest_of(cookie))


def _extensions(cookie: Cookie) -> list[str]:
    return [
        name if value is None else f"{name}={value}"
        for name, value in _rest_of(cookie).items()
        if name.lower() != "httponly"
    ]


def _rest_of(cookie: Cookie) -> dict[str, str | None]:
    # http.cookiejar has no public accessor for the non-standard attributes as a whole.
    rest: dict[str, str | None] = getattr(cookie, "_rest", {})
    return rest


def _rest_attributes(extensions: Any) -> dict[str, str | None]:
    if isinstance(extensions, Mapping):
        return {
            str(name): None if value is None else str(value) for name, value in extensions.items()
        }
    rest: dict[str, str | None] = {}
    for extension in extensions if isinstance(extensions, list) else []:
        name, equals, value = str(extension).partition("=")
        if name.strip():
            rest[name.strip()] = value.strip() if equals else None
    return rest


def export_cookies(jar: CookieJar) -> list[JSON]:
    """Every cookie of ``jar`` in JSON form, expired ones included."""
    return [cookie_to_json(cookie) for cookie in jar]


def import_cookies(jar: CookieJar, cookies: Iterable[Mapping[str, Any]]) -> None:
    """Add cookies in JSON form to ``jar``, replacing those of the same domain, path and name.

    Parameters:
        jar: the jar to add to.
        cookies: cookies as ``export_cookies`` (or tough-cookie) writes them.

    Raises:
        InputError: an entry that is not an object, or has no name or domain.
    """
    for index, entry in enumerate(cookies):
        if not isinstance(entry, Mapping):
            raise InputError(f"cookie {index} must be an object, not {type(entry).__name__}")
        if not (entry.get("key") or entry.get("name")) or not entry.get("domain"):
            raise InputError(f"cookie {index} needs a `name` (or `key`) and a `domain`")
        jar.set_cookie(cookie_from_json(entry))


class MatchingPolicy(DefaultCookiePolicy):
    """The default policy, whose return checks also work outside ``add_cookie_header``.

    The stock expiry check reads a timestamp that only ``add_cookie_header``
    sets; this one asks the cookie itself.
    """

    def return_ok_expires(self, cookie: Cookie, request: Any) -> bool:
        return not cookie.is_expired()


def cookies_for_url(jar: CookieJar, policy: DefaultCookiePolicy, url: str) -> list[Cookie]:
    """The cookies of ``jar`` that a request to ``url`` carries, most specific path first.

    Parameters:
        jar: the jar to look in.
        policy: the jar's policy (a ``MatchingPolicy``, so expiry is checked).
        url: an encoded absolute URL.
    """
    target = UrllibRequest(url)
    matching = [
        cookie
        for cookie in jar
        if policy.domain_return_ok(cookie.domain, target)
        and policy.path_return_ok(cookie.path, target)
        and policy.return_ok(cookie, target)
    ]
    matching.sort(key=lambda cookie: len(cookie.path), reverse=True)
    return matching


def jar_cookie_header(jar: CookieJar, url: str, host: str | None) -> str | None:
    """The Cookie header ``jar`` adds to a request, or None when it adds none.

    Parameters:
        jar: the jar to ask.
        url: the request URL (without fragment).
        host: the request's Host header, if it has one: the jar matches
            domains against it, as it does when it adds the header itself.
    """
    # The jar adds nothing to a request that already has a Cookie header, so
    # it is asked with a bare probe; the caller merges the two.
    probe = requests.PreparedRequest()
    probe.url = url
    probe.headers = CaseInsensitiveDict({"Host": host} if host is not None else {})
    header: str | None = get_cookie_header(jar, probe)  # type: ignore[no-untyped-call]
    return header or None
