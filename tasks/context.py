"""What the run tasks share: Redis, the registry and store, and a run's parsed parts.

Collections are parsed once per worker process and version (they travel by
digest, not in messages); tickets are small and read per step.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from pmrunner.errors import PmrunnerError
from runtime.loading import load_collection
from runtime.model import Collection, Item
from runtime.options import RunOptions, options_from_dict
from scheduler.planner import Branch
from store import Keys, RunRegistry, RunStore, RunTicket
from store.sealing import Sealer
from store.secret_key import claim_fingerprint, secret_key
from store.workers import WorkerBook
from worker.roles import settings_of
from worker.routing import NetworkMap
from worker.settings import Settings

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


# Reconnection attempts are at most this far apart (seconds).
RECONNECT_INTERVAL_MAX = 1.0


def redis_for(settings: Settings) -> redis.Redis:
    """One connection pool per Redis URL and process, riding out Redis outages.

    A command that meets a refused or dropped connection is retried with
    exponential backoff for about ``settings.redis_retry_seconds``, so a
    Redis restart fails no run, no step's recording and no waiter.
    """
    with _clients_lock:
        client = _clients.get(settings.redis_url)
        if client is None:
            attempts = max(int(settings.redis_retry_seconds / RECONNECT_INTERVAL_MAX), 1)
            client = redis.Redis.from_url(
                settings.redis_url,
                health_check_interval=30,
                socket_connect_timeout=5,
                socket_timeout=30,
                retry=Retry(ExponentialBackoff(cap=RECONNECT_INTERVAL_MAX, base=0.05), attempts),
                retry_on_error=[redis.ConnectionError, redis.TimeoutError],
            )
            _clients[settings.redis_url] = client
        return client


# Sealers by key source, and whether Redis confirmed their key (the fingerprint check).
_sealers: dict[tuple[object, ...], tuple[Sealer, bool]] = {}
_sealers_lock = threading.Lock()
# The fingerprint check gives up this soon on a Redis that does not answer, and is
# made again on the next use: a process starts while Redis is down (it rides out outages).
FINGERPRINT_CHECK_TIMEOUT = 2.0


def sealer_for(settings: Settings) -> Sealer:
    """The process's sealer for ``settings``: built once, checked against Redis once.

    Raises:
        ConfigurationError: no key can be read or made, or Redis is used with
            another key (see :mod:`store.secret_key`).
    """
    source = (
        settings.redis_url,
        settings.key_prefix,
        settings.secret_key,
        settings.secret_key_file,
        settings.secret_key_previous,
        settings.data_dir,
    )
    with _sealers_lock:
        found = _sealers.get(source)
        if found is None:
            key = secret_key(settings.secret_key, settings.secret_key_file, settings.data_dir)
            found = _sealers[source] = (Sealer(key, settings.secret_key_previous), False)
        sealer, checked = found
        if not checked and _checked_fingerprint(settings, sealer):
            _sealers[source] = (sealer, True)
        return sealer


def _checked_fingerprint(settings: Settings, sealer: Sealer) -> bool:
    """Whether Redis confirmed the sealer's key; False when Redis did not answer now."""
    client = redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=FINGERPRINT_CHECK_TIMEOUT,
        socket_timeout=FINGERPRINT_CHECK_TIMEOUT,
    )
    try:
        claim_fingerprint(client, settings.key_prefix, sealer)
    except (redis.ConnectionError, redis.TimeoutError):
        return False
    finally:
        client.close()
    return True


@dataclass
class Services:
    """Redis-backed services for one app."""

    app: Celery
    settings: Settings
    registry: RunRegistry
    store: RunStore
    workers: WorkerBook

    @classmethod
    def of(cls, app: Celery) -> Services:
        settings = settings_of(app)
        client = redis_for(settings)
        keys = Keys(settings.key_prefix)
        store = RunStore(
            client,
            keys,
            retention_days=settings.retention_days,
            retention_runs=settings.retention_runs,
        )
        registry = RunRegistry(client, keys, sealer_for(settings))
        return cls(app, settings, registry, store, WorkerBook(client, keys))


class CollectionCache:
    """Parsed collections by digest, per process."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._parsed: dict[str, Collection] = {}

    def get(self, registry: RunRegistry, digest: str) -> Collection:
        with self._lock:
            found = self._parsed.get(digest)
        if found is not None:
            return found
        raw = registry.collection(digest)
        if raw is None:
            raise PmrunnerError(f"collection version {digest} is no longer cached in Redis")
        collection = load_collection(raw)
        with self._lock:
            if len(self._parsed) >= self.size:
                self._parsed.pop(next(iter(self._parsed)))
            self._parsed[digest] = collection
        return collection


collections = CollectionCache()


class ContextCache:
    """Recent runs' contexts, per process: a ticket does not change once dispatched,
    so the steps of a run that land on the same worker read and parse it once."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._contexts: OrderedDict[str, RunContext] = OrderedDict()

    def get(self, run_id: str) -> RunContext | None:
        with self._lock:
            context = self._contexts.get(run_id)
            if context is not None:
                self._contexts.move_to_end(run_id)
            return context

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._contexts.pop(run_id, None)

    def put(self, context: RunContext) -> None:
        with self._lock:
            self._contexts[context.ticket.run_id] = context
            while len(self._contexts) > self.size:
                self._contexts.popitem(last=False)


contexts = ContextCache()


@dataclass
class RunContext:
    """One run's ticket with its parsed collection, options and routing."""

    ticket: RunTicket
    collection: Collection
    options: RunOptions
    networks: NetworkMap
    # Items and branches by key, built on first use: every step looks up a
    # few, and a scan per lookup made a run's steps quadratic in its size.
    _items: dict[str, Item] = field(default_factory=dict, init=False, repr=False)
    _branches: dict[str, Branch] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_ticket(cls, services: Services, ticket: RunTicket) -> RunContext:
        collection = collections.get(services.registry, ticket.collection_digest)
        networks = NetworkMap.from_dict(
            ticket.networks or {}, default=services.settings.default_network
        )
        return cls(ticket, collection, options_from_dict(ticket.options), networks)

    def item(self, item_id: str) -> Item:
        if not self._items:
            items: dict[str, Item] = {}
            for item in self.collection.items():
                items.setdefault(item.id, item)  # the first of a repeated id, as before
            self._items = items
        found = self._items.get(item_id)
        if found is None:
            raise PmrunnerError(f"item {item_id} is not in the run's collection")
        return found

    def selected_items(self) -> list[Item]:
        return self.collection.select(list(self.options.folders))

    def branch(self, key: str) -> Branch:
        """The plan's branch ``key``."""
        if not self._branches:
            branches: dict[str, Branch] = {}
            for raw in self.ticket.plan["branches"]:
                branches.setdefault(raw["key"], Branch.from_dict(raw))
            self._branches = branches
        found = self._branches.get(key)
        if found is None:
            raise KeyError(f"branch {key} is not in the plan of run {self.ticket.run_id}")
        return found

    def position(self, branch: Branch, cursor: dict[str, Any]) -> tuple[str, int]:
        """The item id and iteration a branch's ``cursor`` points at."""
        index = int(cursor.get("index", 0))
        if branch.dynamic:
            return self.selected_items()[index].id, int(cursor.get("iteration", 0))
        ref = branch.steps[index]
        return ref.item_id, ref.iteration
