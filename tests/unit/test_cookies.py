"""Tests for runtime.cookies: the one JSON form of jar cookies, and the jar lookups.

Cookies are set by a real loopback server through the HTTP client, so the
jar holds what ``http.cookiejar`` makes of real ``Set-Cookie`` headers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.cookiejar import CookieJar

import pytest

from pmrunner.errors import InputError
from runtime.cookies import (
    MatchingPolicy,
    cookie_from_json,
    cookie_to_json,
    cookies_for_url,
    export_cookies,
    import_cookies,
    jar_cookie_header,
)
from runtime.http_client import HttpClient
from runtime.options import RunOptions, Timeouts
from runtime.request_builder import build_request
from runtime.sandbox import cookies as sandbox_cookies
from tests.servers import LoopbackServer

pytest_plugins = ("tests.servers",)
pytestmark = pytest.mark.usefixtures("no_proxy_env")


@pytest.fixture()
def client() -> Iterator[HttpClient]:
    with HttpClient(RunOptions(timeouts=Timeouts(request=5000))) as http_client:
        yield http_client


def set_by_server(client: HttpClient, server: LoopbackServer, name: str, value: str) -> None:
    """Have the loopback server answer with ``Set-Cookie: name=value; Path=/``."""
    client.send(build_request({"url": server.url(f"/cookies/set?{name}={value}")}, str))


def test_the_sandbox_uses_the_same_conversions() -> None:
    assert sandbox_cookies.cookie_to_json is cookie_to_json
    assert sandbox_cookies.cookie_from_json is cookie_from_json


def test_server_cookie_in_tough_cookie_form(
    client: HttpClient, http_server: LoopbackServer
) -> None:
    set_by_server(client, http_server, "sid", "abc")
    (exported,) = client.export_cookies()
    assert exported == {
        "key": "sid",
        "value": "abc",
        "expires": "Infinity",
        "domain": "127.0.0.1",
        "path": "/",
        "secure": False,
        "httpOnly": False,
        "hostOnly": True,
    }


def test_domain_cookie_with_attributes_survives_a_round_trip() -> None:
    jar = CookieJar()
    data = {
        "key": "pref",
        "value": "dark",
        "expires": "2041-01-02T03:04:05Z",
        "domain": "example.test",
        "path": "/app",
        "secure": True,
        "httpOnly": True,
        "hostOnly": False,
        "extensions": ["SameSite=Lax", "Partitioned"],
    }
    import_cookies(jar, [data])
    (cookie,) = jar
    assert cookie.domain == ".example.test" and cookie.domain_specified
    assert cookie.expires == 2240708645
    assert cookie.get_nonstandard_attr("SameSite") == "Lax"
    assert cookie.has_nonstandard_attr("Partitioned") and cookie.has_nonstandard_attr("HttpOnly")
    assert export_cookies(jar) == [data]


def test_far_future_expiry_is_clamped_not_an_error() -> None:
    cookie = cookie_from_json({"key": "k", "domain": "h.test"})
    cookie.expires = 10**13  # what a huge Max-Age leaves in the jar
    assert cookie_to_json(cookie)["expires"] == "9999-12-31T23:59:59Z"


@pytest.mark.parametrize(
    ("expires", "seconds"),
    [(None, None), ("Infinity", None), (1700000000, 1700000000), (1700000000123, 1700000000)],
)
def test_expires_as_seconds_milliseconds_or_infinity(expires: object, seconds: int | None) -> None:
    assert cookie_from_json({"key": "k", "domain": "h.test", "expires": expires}).expires == seconds


def test_lower_case_httponly_from_a_server_counts() -> None:
    cookie = cookie_from_json({"key": "k", "domain": "h.test", "extensions": ["httponly"]})
    data = cookie_to_json(cookie)
    assert data["httpOnly"] is True and "extensions" not in data


def test_entries_of_the_earlier_export_form_still_import() -> None:
    jar = CookieJar()
    earlier = {
        "name": "carry",
        "value": "over",
        "domain": ".example.test",
        "path": "/",
        "expires": 2240190245,
        "hostOnly": False,
        "extensions": {"SameSite": "Strict"},
    }
    import_cookies(jar, [earlier])
    (cookie,) = jar
    assert (cookie.name, cookie.domain, cookie.expires) == ("carry", ".example.test", 2240190245)
    assert cookie.get_nonstandard_attr("SameSite") == "Strict"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"value": "x", "domain": "h.test"}, "cookie 0 needs a `name`"),
        ({"key": "k"}, "`domain`"),
        ("k=v", "cookie 0 must be an object"),
    ],
)
def test_bad_entries_are_input_errors(entry: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        import_cookies(CookieJar(), [entry])  # type: ignore[list-item]


def test_lookups_skip_expired_and_insecure_cookies() -> None:
    jar = CookieJar()
    now = int(time.time())
    import_cookies(
        jar,
        [
            {"key": "live", "value": "1", "domain": "h.test", "expires": now + 3600},
            {"key": "gone", "value": "2", "domain": "h.test", "expires": now - 3600},
            {"key": "tls", "value": "3", "domain": "h.test", "secure": True},
            {"key": "deep", "value": "4", "domain": "h.test", "path": "/a/b"},
        ],
    )
    policy = MatchingPolicy()
    names = [c.name for c in cookies_for_url(jar, policy, "http://www.h.test/a/b/c")]
    assert names == ["deep", "live"]
    assert [c.name for c in cookies_for_url(jar, policy, "https://h.test/")] == ["live", "tls"]


def test_jar_cookie_header_uses_the_host_header() -> None:
    jar = CookieJar()
    import_cookies(jar, [{"key": "k", "value": "v", "domain": "named.test", "hostOnly": True}])
    assert jar_cookie_header(jar, "http://127.0.0.1/", None) is None
    assert jar_cookie_header(jar, "http://127.0.0.1/", "named.test") == "k=v"
