"""Postman monitors as the catalog holds them: what ticks and the API run from.

:class:`CatalogSource` is a :class:`~scheduler.monitors.MonitorSource` that
never calls Postman: monitors, collections and environments come from the
last good poll in Redis (see :mod:`scheduler.catalog`), so a run starts the
same whether Postman answers or not, and from any process.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Hashable
from typing import Any

from pmrunner.errors import PostmanApiError
from runtime.loading import VariableFile, variable_file_from_json
from scheduler.catalog import Catalog
from scheduler.health import SourceHealth, read_health
from scheduler.monitors import Monitor
from scheduler.secrets import SecretOverrides
from scheduler.snapshot import collection_key, environment_key

__all__ = ["CatalogSource"]


class CatalogSource:
    """Monitors and their content from the catalog.

    Args:
        catalog: the deployment's catalog.
        overrides: local variable values applied to every environment.
        poll_interval: the poller's interval (for the health state).
    """

    def __init__(
        self, catalog: Catalog, overrides: SecretOverrides | None, *, poll_interval: float
    ) -> None:
        self.catalog = catalog
        self._overrides = overrides or SecretOverrides()
        self._poll_interval = poll_interval

    def health(self) -> SourceHealth:
        """The source's state as the poller last recorded it."""
        return read_health(
            self.catalog.redis,
            self.catalog.prefix,
            time.time(),
            poll_interval=self._poll_interval,
            max_staleness=self.catalog.max_staleness,
        )

    @property
    def healthy(self) -> bool:
        return self.health().state == "healthy"

    @property
    def last_error(self) -> str | None:
        return self.health().reason

    def refresh(self) -> None:
        """Read the catalog again (the poller, not this, talks to Postman)."""
        self.catalog.monitors()

    def monitors(self) -> list[Monitor]:
        return list(self.catalog.monitors().values())

    def collection(self, monitor: Monitor) -> dict[str, Any]:
        """The collection of the last good poll.

        Raises:
            PostmanApiError: no poll has fetched it.
        """
        return copy.deepcopy(self._body(collection_key(monitor.collection), "collection"))

    def environment(self, monitor: Monitor) -> VariableFile | None:
        """The environment of the last good poll, with the overrides applied.

        Raises:
            PostmanApiError: no poll has fetched it.
            DataFileError: it is not an environment.
            ConfigurationError: a vault reference no override supplies.
        """
        if monitor.environment is None:
            return self._overrides.apply(monitor.uid, None)
        raw = self._body(environment_key(monitor.environment), "environment")
        label = f"Postman environment {monitor.environment!r}"
        return self._overrides.apply(monitor.uid, variable_file_from_json(raw, label=label))

    def revision(self, monitor: Monitor, version: int) -> Hashable:
        """What a run of ``monitor`` is built from, as of catalog ``version``: the
        stamps of its collection and environment, and its overrides. Equal
        revisions give equal runs, so a run prepared ahead stays valid."""
        stamps = self.catalog.stamps(version)
        environment = None
        if monitor.environment is not None:
            environment = stamps.get(environment_key(monitor.environment))
        overrides = tuple(sorted(self._overrides.for_monitor(monitor.uid).items()))
        return stamps.get(collection_key(monitor.collection)), environment, overrides

    def _body(self, key: str, kind: str) -> dict[str, Any]:
        content = self.catalog.content(key)
        if content is None:
            uid = key.partition(":")[2]
            raise PostmanApiError(
                f"the {kind} {uid!r} is not in the catalog: no good poll has fetched it"
            )
        return content.body
