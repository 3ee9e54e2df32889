"""Planted secrets and the places they must never reach: a collection that uses each kind,
and recorders of Redis, Celery task messages and logs."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from celery import signals

JSON = dict[str, Any]
KINDS = (
    "env",  # a secret-type environment value
    "collvar",  # a secret-type collection variable
    "authz",  # an Authorization header written into the collection
    "apikey",  # an API-key header written into the collection
    "basic",  # basic auth password
    "digest",  # digest auth password
    "oauth1",  # OAuth 1.0 consumer secret
    "oauth2",  # OAuth 2.0 access token
    "script",  # set by a script with pm.environment.set(..., "secret")
    "override",  # a monitor's secret override (secrets file)
    "webhook",  # a token in a monitor's webhook URL
)


def planted() -> dict[str, str]:
    """One unique value per kind of secret."""
    return {kind: f"pmrsecret-{kind}-{uuid.uuid4().hex[:16]}" for kind in KINDS}


def _item(name: str, url: str, *, auth: JSON | None = None, **request: Any) -> JSON:
    body: JSON = {"method": "GET", "url": "{{baseUrl}}" + url, **request}
    if auth is not None:
        body["auth"] = auth
    test = f'pm.test("{name} answered", () => pm.expect(pm.response.code).to.be.below(500));'
    return {
        "name": name,
        "request": body,
        "event": [{"listen": "test", "script": {"exec": [test]}}],
    }


def collection(s: dict[str, str]) -> JSON:
    """Requests that use every kind of secret; the echo server sends each back."""
    headers = _item(
        "headers",
        "/headers?q={{envSecret}}",
        header=[
            {"key": "Authorization", "value": f"Bearer {s['authz']}"},
            {"key": "X-Api-Key", "value": s["apikey"]},
            {"key": "X-Env", "value": "{{envSecret}}"},
            {"key": "X-Coll", "value": "{{collSecret}}"},
        ],
    )
    headers["event"].append(
        {
            "listen": "prerequest",
            "script": {"exec": [f'pm.environment.set("scriptSecret", "{s["script"]}", "secret");']},
        }
    )
    scripted = _item(
        "script secret",
        "/post",
        method="POST",
        header=[{"key": "X-Script", "value": "{{scriptSecret}}"}],
        body={"mode": "raw", "raw": '{"s": "{{scriptSecret}}", "o": "{{overrideSecret}}"}'},
    )
    scripted["event"][0]["script"]["exec"].append(
        'console.log("token", pm.environment.get("scriptSecret"), pm.variables.get("envSecret"));'
    )

    def params(**values: str) -> list[JSON]:
        return [{"key": key, "value": value, "type": "string"} for key, value in values.items()]

    items = [
        headers,
        _item(
            "basic",
            "/basic-auth",
            auth={"type": "basic", "basic": params(username="postman", password=s["basic"])},
        ),
        _item(
            "digest",
            "/get",
            auth={
                "type": "digest",
                "digest": params(username="u", password=s["digest"], realm="r", nonce="n"),
            },
        ),
        _item(
            "oauth1",
            "/get",
            auth={
                "type": "oauth1",
                "oauth1": params(
                    consumerKey="ck", consumerSecret=s["oauth1"], signatureMethod="HMAC-SHA1"
                ),
            },
        ),
        _item(
            "oauth2",
            "/get",
            auth={"type": "oauth2", "oauth2": params(accessToken=s["oauth2"], addTokenTo="header")},
        ),
        scripted,
    ]
    variables = [{"key": "collSecret", "value": s["collvar"], "type": "secret"}]
    info = {"_postman_id": f"c-{uuid.uuid4().hex[:8]}", "name": "Secrets"}
    return {"info": info, "variable": variables, "item": items}


def write_inputs(directory: Path, s: dict[str, str], base_url: str) -> tuple[Path, Path]:
    """The collection and environment files."""
    collection_path = directory / "secrets.postman_collection.json"
    collection_path.write_text(json.dumps(collection(s)))
    values = [
        {"key": "baseUrl", "value": base_url},
        {"key": "envSecret", "value": s["env"], "type": "secret"},
    ]
    environment_path = directory / "env.json"
    environment_path.write_text(json.dumps({"name": "env", "values": values}))
    return collection_path, environment_path


def found_in(text: str, s: dict[str, str]) -> list[str]:
    """The kinds of secret that appear in ``text``."""
    return [kind for kind, value in s.items() if value in text]


_READ = {
    "string": lambda pipe, key: pipe.get(key),
    "hash": lambda pipe, key: pipe.hgetall(key),
    "list": lambda pipe, key: pipe.lrange(key, 0, -1),
    "set": lambda pipe, key: pipe.smembers(key),
    "zset": lambda pipe, key: pipe.zrange(key, 0, -1),
    "stream": lambda pipe, key: pipe.xrange(key),
}


def redis_texts(client: redis.Redis, keys: list[bytes]) -> dict[bytes, str]:
    """Everything each key holds, as text (any type), in two pipelined round trips."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
    kinds = [kind.decode() for kind in pipe.execute()]
    pipe = client.pipeline(transaction=False)
    readable = [(key, kind) for key, kind in zip(keys, kinds, strict=True) if kind in _READ]
    for key, kind in readable:
        _READ[kind](pipe, key)
    values = pipe.execute(raise_on_error=False)
    return {key: repr(value) for (key, _), value in zip(readable, values, strict=True)}


class RedisWatch:
    """Scans every key of the database, again and again, noting which key held which secret."""

    def __init__(self, url: str, s: dict[str, str]) -> None:
        self.client = redis.Redis.from_url(url)
        self.secrets = s
        self.seen: dict[str, set[str]] = {}
        self.sealed: set[str] = set()  # keys seen holding a sealed value
        self.scans = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def scan(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        cursor = 0
        while True:
            cursor, keys = self.client.scan(cursor, count=2000)
            for key, text in redis_texts(self.client, keys).items():
                if "sealed:v1:" in text:
                    self.sealed.add(key.decode())
                kinds = found_in(text, self.secrets)
                if kinds:
                    found[key.decode()] = set(kinds)
            if cursor == 0:
                return found

    def _watch(self) -> None:
        while not self._stop.is_set():
            for key, kinds in self.scan().items():
                self.seen.setdefault(key, set()).update(kinds)
            self.scans += 1

    def __enter__(self) -> RedisWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)


@contextmanager
def task_messages() -> Iterator[list[str]]:
    """What Flower and the broker show of every task sent or received in this process."""
    seen: list[str] = []

    def published(headers: Any = None, body: Any = None, **_: Any) -> None:
        seen.append(repr(headers) + repr(body))

    def received(request: Any = None, **_: Any) -> None:
        seen.append(repr(getattr(request, "argsrepr", "")) + repr(getattr(request, "args", "")))
        seen.append(repr(getattr(request, "kwargsrepr", "")))

    signals.before_task_publish.connect(published, weak=False)
    signals.task_received.connect(received, weak=False)
    try:
        yield seen
    finally:
        signals.before_task_publish.disconnect(published)
        signals.task_received.disconnect(received)
