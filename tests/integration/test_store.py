"""The run store and the registry against a real Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from pmrunner.errors import InputError
from store import Keys, RunRegistry, RunStore

pytestmark = pytest.mark.integration


@pytest.fixture()
def client(redis_url: str) -> Iterator[tuple[redis.Redis, Keys]]:
    keys = Keys(f"pmrtest:{uuid.uuid4().hex[:8]}:")
    connection = redis.Redis.from_url(redis_url)
    yield connection, keys
    for key in connection.scan_iter(f"{keys.prefix}*"):
        connection.delete(key)


def report(n: int, *, status: str = "finished", source: str = "api", age_days: float = 0) -> dict:
    started = (time.time() - age_days * 86400) * 1000 + n
    return {
        "id": f"run-{n}",
        "collectionId": "c1",
        "status": status,
        "source": source,
        "startedAt_ms": started,
    }


def test_pages_newest_first_with_cursor(client: tuple[redis.Redis, Keys]) -> None:
    store = RunStore(*client)
    for n in range(25):
        store.save(report(n, status="failed" if n % 5 == 0 else "finished"))
    first = store.list("c1", limit=10)
    assert [r["id"] for r in first.runs] == [f"run-{n}" for n in range(24, 14, -1)]
    assert first.total == 25 and first.next_cursor
    second = store.list("c1", limit=10, cursor=first.next_cursor)
    third = store.list("c1", limit=10, cursor=second.next_cursor)
    assert [r["id"] for r in third.runs] == [f"run-{n}" for n in range(4, -1, -1)]
    assert third.next_cursor is None
    failed = store.list("c1", status="failed")
    assert failed.total == 5 and {r["status"] for r in failed.runs} == {"failed"}
    assert store.list("c1", source="monitor").total == 0
    assert store.list("unknown").total == 0


def test_bad_cursor_is_an_input_error(client: tuple[redis.Redis, Keys]) -> None:
    with pytest.raises(InputError, match="invalid cursor"):
        RunStore(*client).list("c1", cursor="!!!")


def test_retention_by_count_and_age(client: tuple[redis.Redis, Keys]) -> None:
    store = RunStore(*client, retention_days=1, retention_runs=3)
    store.save(report(0, age_days=2))
    for n in range(1, 6):
        store.save(report(n))
    assert [r["id"] for r in store.list("c1").runs] == ["run-5", "run-4", "run-3"]
    assert store.get("run-0") is None and store.get("run-1") is None


def test_a_monitors_runs_are_indexed_and_leave_its_index_with_retention(
    client: tuple[redis.Redis, Keys],
) -> None:
    redis_client, keys = client
    store = RunStore(redis_client, keys, retention_runs=3)
    for n in range(5):
        monitor = {"uid": "m-a" if n % 2 == 0 else "m-b", "name": f"Monitor {n % 2}"}
        store.save({**report(n, status="failed" if n == 4 else "finished"), "monitor": monitor})
    store.save(report(5))  # a run of no monitor
    assert [r["id"] for r in store.recent(monitor="m-a")] == ["run-4"]  # runs 0 and 2: retention
    assert redis_client.zcard(keys.monitor_runs("m-a")) == 1
    assert [r["id"] for r in store.recent(monitor="Monitor 1")] == ["run-3"]  # by name
    last = store.last_runs(["m-a", "m-b", "m-none"])
    assert {uid: r["id"] for uid, r in last.items()} == {"m-a": "run-4", "m-b": "run-3"}
    assert [r["id"] for r in store.recent(status="failed")] == ["run-4"]
    assert [r["id"] for r in store.recent(limit=2)] == ["run-5", "run-4"]
    assert store.find("run-3") == store.get("run-3")
    assert store.find("run-") is None  # too short to be looked up as the start of an id
    for n in (6, 7):
        store.save({**report(n), "id": f"a1b2c3d4-{n}"})
    assert store.find("a1b2c3d4-7") == store.get("a1b2c3d4-7")
    with pytest.raises(InputError, match="ambiguous"):
        store.find("a1b2c3")
    assert store.find("nothing-like-it") is None


def test_runs_stored_before_monitors_had_an_index_are_their_last_runs(
    client: tuple[redis.Redis, Keys],
) -> None:
    redis_client, keys = client
    store = RunStore(redis_client, keys)
    for n in range(5):
        store.save({**report(n), "monitor": {"uid": "m-a" if n < 3 else "m-b", "name": "M"}})
    store.save(report(5))  # a run of no monitor
    # As a store written before monitors had an index of their own holds them.
    redis_client.delete(keys.monitor_runs("m-a"), keys.monitor_runs("m-b"))
    redis_client.delete(keys.monitor_runs_filled())
    last = store.last_runs(["m-a", "m-b", "m-none"])
    assert {uid: r["id"] for uid, r in last.items()} == {"m-a": "run-2", "m-b": "run-4"}
    # The pass filled every monitor's index with all its runs, and happens once.
    assert [r["id"] for r in store.recent(monitor="m-a")] == ["run-2", "run-1", "run-0"]
    assert redis_client.zcard(keys.monitor_runs("m-b")) == 2
    assert not redis_client.exists(keys.monitor_runs(""), keys.monitor_runs("m-none"))
    redis_client.delete(keys.monitor_runs("m-a"))
    assert set(store.last_runs(["m-a", "m-b"])) == {"m-b"}


def test_registry_caches_collections_by_content(client: tuple[redis.Redis, Keys]) -> None:
    registry = RunRegistry(*client)
    digest = registry.cache_collection({"info": {"name": "x"}}, "run-a", 60)
    assert registry.cache_collection({"info": {"name": "x"}}, "run-b", 60) == digest
    assert registry.collection(digest) == {"info": {"name": "x"}}


def test_a_cached_collection_lives_only_while_a_run_needs_it(
    client: tuple[redis.Redis, Keys],
) -> None:
    redis_client, keys = client
    registry = RunRegistry(redis_client, keys)
    digest = registry.cache_collection({"info": {"name": "y"}}, "run-a", 30)
    registry.cache_collection({"info": {"name": "y"}}, "run-b", 600)
    registry.cache_collection({"info": {"name": "y"}}, "run-c", 5)  # never shortens
    held = [keys.collection(digest), keys.collection_users(digest)]
    assert all(590 < redis_client.ttl(key) <= 600 for key in held)
    registry.release_collection(digest, "run-a")
    registry.release_collection(digest, "run-c")
    assert registry.collection(digest) is not None  # run-b still needs it
    registry.release_collection(digest, "run-b")
    assert redis_client.exists(*held) == 0
