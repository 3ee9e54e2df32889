"""Metrics read from Redis when scraped, registered once per process.

A collector that reads shared state (the monitor source's health, the stored
run counts) is registered in Prometheus's default registry the first time it
is asked for; later calls only point it at the newest lookup, so a process
that serves several settings (tests, an API beside a worker) never registers
it twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from prometheus_client import REGISTRY

__all__ = ["LookupCollector", "register_scraped"]


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
