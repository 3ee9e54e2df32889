"""Metrics read from Redis when scraped, registered once per process.

A collector that reads shared state (the monitor source's health, the stored
run counts) is registered in Prometheus's default registry the first time it
is asked for; later calls only point it at the newest lookup, so a process
that serves several settings (tests, an API beside a worker) never registers
it twice. ``ScrapedCollector`` is what such a collector is built on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, Protocol, TypeVar

import redis
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric

__all__ = ["LookupCollector", "ScrapedCollector", "register_scraped"]

Figures = TypeVar("Figures")


class ScrapedCollector(Generic[Figures]):
    """A collector that reads its figures through ``lookup`` each time it is scraped.

    A subclass says which metric families the figures make (``families``).
    With Redis away the collector yields nothing: ``/health`` says so, and the
    process's other metrics are still served.

    Args:
        lookup: reads the figures (from Redis, as a rule) when scraped.
    """

    def __init__(self, lookup: Callable[[], Figures]) -> None:
        self.lookup = lookup

    def collect(self) -> Iterator[Metric]:
        try:
            figures = self.lookup()
        except (redis.RedisError, OSError):
            return
        yield from self.families(figures)

    def families(self, figures: Figures) -> Iterable[Metric]:
        """The metric families ``figures`` make.

        Parameters:
            figures: what ``lookup`` read.
        """
        raise NotImplementedError


class LookupCollector(Protocol):
    """A collector built on, and reading through, a ``lookup`` callable."""

    lookup: Callable[[], Any]

    def __init__(self, lookup: Callable[[], Any]) -> None: ...

    def collect(self) -> Any: ...


_registered: dict[type, LookupCollector] = {}
_lock = threading.Lock()


def register_scraped(collector_type: type[LookupCollector], lookup: Callable[[], Any]) -> None:
    """Serve ``collector_type(lookup)`` in this process's metrics (the latest ``lookup`` wins).

    Parameters:
        collector_type: the collector's class; built once per process.
        lookup: what the collector reads when scraped.
    """
    with _lock:
        collector = _registered.get(collector_type)
        if collector is None:
            collector = collector_type(lookup)
            REGISTRY.register(collector)
            _registered[collector_type] = collector
        else:
            collector.lookup = lookup
