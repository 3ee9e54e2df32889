"""Webhooks from a durable outbox in Redis: every delivery retried with backoff, and recorded.

Finalizing a run (or a monitor's failure and recovery notices) only adds an
entry to the outbox; the process holding the upkeep lease delivers due
entries from a small thread pool, so a slow receiver holds up nothing. A
failed delivery (connection error, 5xx) is tried again after 2, 4, 8 ...
seconds (at most ``BACKOFF_MAX``), ``MAX_ATTEMPTS`` times in all; a 4xx answer
is final. Each attempt is recorded in ``deliveries:<run id>``, kept as long
as stored runs are. Entries survive any process: whoever holds the lease
next delivers them.

A webhook URL often carries its token: entries are sealed (``store.sealing``),
and records and log lines show only the URL's scheme, host and port.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import requests

from pmrunner.errors import EgressBlockedError
from runtime.reporters.run_shapes import monitor_run_result
from store.keys import text
from tasks.context import Services
from tasks.egress import webhook_session
from worker.settings import Settings

log = logging.getLogger(__name__)
JSON = dict[str, Any]
TIMEOUT_SECONDS = 10
MAX_ATTEMPTS = 8
BACKOFF_MAX = 300
BATCH = 16
ENTRY_KEPT_SECONDS = 7 * 24 * 3600


def enqueue(services: Services, url: str, run_id: str, payload: JSON | None = None) -> str:
    """Add a delivery to the outbox; return its id.

    Parameters:
        services: Redis-backed services.
        url: where to POST.
        run_id: the run it is about (its monitor-run JSON is sent when
            ``payload`` is None, read from the store at delivery time).
        payload: a notice to send instead (monitor failing, recovered).
    """
    entry_id = uuid.uuid4().hex
    entry = {"id": entry_id, "url": url, "run": run_id, "payload": payload, "attempts": 0}
    keys = services.registry.keys
    pipe = services.registry.redis.pipeline()
    sealed = services.registry.sealer.seal_json(entry)
    pipe.set(keys.outbox_entry(entry_id), sealed, ex=ENTRY_KEPT_SECONDS)
    pipe.zadd(keys.outbox(), {entry_id: time.time()})
    pipe.execute()
    return entry_id


def shown_url(url: str) -> str:
    """Where a webhook goes, without what may be its token (path, query, user info)."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a number: shown as nothing rather than failing a record
        port = ""
    hidden = "/..." if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{parts.hostname or '?'}{port}{hidden}"


def post_json(url: str, payload: JSON, settings: Settings) -> tuple[JSON, bool]:
    """POST ``payload`` under the runner's egress policy.

    Returns what to record (``status`` or ``error``) and whether to try again
    (connection errors and 5xx). A 4xx answer, or a URL the egress policy
    refuses, is final and logged.
    """
    with webhook_session(settings) as session:
        try:
            response = session.post(url, json=payload, timeout=TIMEOUT_SECONDS)
        except EgressBlockedError as error:
            log.warning("webhook %s: %s", shown_url(url), error)
            return {"error": str(error)}, False
        except requests.RequestException as error:
            return {"error": f"{type(error).__name__}: {error}"}, True
    if response.status_code >= 400:
        log.warning("webhook %s answered %s", shown_url(url), response.status_code)
    return {"status": response.status_code}, response.status_code >= 500


def deliveries(services: Services, run_id: str) -> list[JSON]:
    """Every recorded delivery attempt for a run, oldest first."""
    raw = services.registry.redis.lrange(services.registry.keys.deliveries(run_id), 0, -1)
    return [json.loads(item) for item in raw]


class Outbox:
    """Delivers due outbox entries from a thread pool (one per upkeep thread).

    Parameters:
        services: Redis-backed services.
        threads: deliveries in flight at once.
    """

    def __init__(self, services: Services, threads: int = 4) -> None:
        self.services = services
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="pmrunner-webhook")

    def deliver_due(self) -> int:
        """Start every due delivery; return how many started."""
        keys = self.services.registry.keys
        client = self.services.registry.redis
        now = time.time()
        due = [text(i) for i in client.zrangebyscore(keys.outbox(), 0, now, start=0, num=BATCH)]
        for entry_id in due:
            # Held for the length of one attempt, so the next round does not start it again.
            client.zadd(keys.outbox(), {entry_id: now + TIMEOUT_SECONDS + 5}, xx=True)
            self._pool.submit(self._deliver, entry_id)
        return len(due)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _deliver(self, entry_id: str) -> None:
        try:
            self._attempt(entry_id)
        except Exception:
            log.exception("webhook delivery %s failed inside pmrunner; it is tried again", entry_id)

    def _attempt(self, entry_id: str) -> None:
        keys = self.services.registry.keys
        client = self.services.registry.redis
        raw = client.get(keys.outbox_entry(entry_id))
        if raw is None:
            client.zrem(keys.outbox(), entry_id)
            return
        entry = self.services.registry.sealer.open_json(raw)
        entry["attempts"] += 1
        outcome, retry = self._post(entry)
        self._record(entry, outcome)
        if retry and entry["attempts"] < MAX_ATTEMPTS:
            delay = min(2 ** entry["attempts"], BACKOFF_MAX)
            pipe = client.pipeline()
            sealed = self.services.registry.sealer.seal_json(entry)
            pipe.set(keys.outbox_entry(entry_id), sealed, ex=ENTRY_KEPT_SECONDS)
            pipe.zadd(keys.outbox(), {entry_id: time.time() + delay})
            pipe.execute()
            return
        if retry:
            log.warning(
                "webhook %s: gave up after %d attempts", shown_url(entry["url"]), entry["attempts"]
            )
        pipe = client.pipeline()
        pipe.zrem(keys.outbox(), entry_id)
        pipe.delete(keys.outbox_entry(entry_id))
        pipe.execute()

    def _post(self, entry: JSON) -> tuple[JSON, bool]:
        """POST the entry; the outcome to record, and whether to try again."""
        payload = entry.get("payload")
        if payload is None:
            report = self.services.store.get(entry["run"])
            if report is None:
                return {"error": "the run is no longer stored"}, False
            payload = monitor_run_result(report)
        return post_json(entry["url"], payload, self.services.settings)

    def _record(self, entry: JSON, outcome: JSON) -> None:
        record = {
            "url": shown_url(entry["url"]),
            "event": (entry.get("payload") or {}).get("event", "run.finished"),
            "attempt": entry["attempts"],
            "at": time.time(),
            **outcome,
        }
        key = self.services.registry.keys.deliveries(entry["run"])
        pipe = self.services.registry.redis.pipeline()
        pipe.rpush(key, json.dumps(record))
        pipe.expire(key, int(self.services.settings.retention_days * 86400))
        pipe.execute()
