"""What a working process shows of itself: its metrics, and the queues it consumes.

``PMRUNNER_METRICS_PORT``: every pmrunner process that works serves ``/metrics``.
A worker (``celery -A worker worker``), beat (``celery -A worker beat``) and
``pmrunner runner start`` / ``up`` serve Prometheus metrics on that port
when it is set (0, the default, serves nothing): this process's own
counters, and the cluster's queues, workers and stored runs, read from
Redis when scraped (``tasks.observe``). A beat embedded in a worker
(``-B``) is a child of the worker's process and shares its server.

Each worker also records the queues it consumes next to its heartbeat
(``WorkerBook.announce``), so metrics, ``/health`` and ``pmrunner run
--distributed`` can tell which networks have a live worker.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import redis
from celery import signals

from tasks.context import Services
from tasks.observe import register_cluster_metrics, scrape_client
from worker.metrics import start_metrics_server
from worker.roles import settings_of
from worker.settings import Settings

log = logging.getLogger(__name__)

_serving: set[int] = set()  # ports this process (or the parent it was forked from) serves
_lock = threading.Lock()


def serve_metrics(settings: Settings) -> bool:
    """Serve ``/metrics`` on ``settings.metrics_host:metrics_port``; False when served already.

    Raises ``OSError`` when the port cannot be listened on.
    """
    port = settings.metrics_port
    with _lock:
        if port <= 0 or port in _serving:
            return False
        start_metrics_server(port, settings.metrics_host)
        _serving.add(port)
    register_cluster_metrics(settings, scrape_client(settings))
    return True


def metrics_address(settings: Settings) -> str:
    """Where the metrics server listens: ``host:port``, an IPv6 host in brackets."""
    host = settings.metrics_host
    return f"[{host}]:{settings.metrics_port}" if ":" in host else f"{host}:{settings.metrics_port}"


def _serve_for(sender: Any) -> None:
    app = getattr(sender, "app", None)
    if getattr(app, "main", None) != "pmrunner":
        return
    settings = settings_of(app)
    try:
        if serve_metrics(settings):
            log.info("metrics served on %s/metrics", metrics_address(settings))
    except OSError as error:  # the work goes on without metrics
        reason = error.strerror or str(error)
        log.error(
            "metrics on %s (PMRUNNER_METRICS_HOST, PMRUNNER_METRICS_PORT): cannot listen (%s)",
            metrics_address(settings),
            reason,
        )


@signals.worker_init.connect
def serve_worker_metrics(sender: Any = None, **_: Any) -> None:
    """A worker serves metrics from the moment it starts."""
    _serve_for(sender)


@signals.beat_init.connect
def serve_beat_metrics(sender: Any = None, **_: Any) -> None:
    """Beat (the scheduler) serves metrics too."""
    _serve_for(sender)


class QueueAnnouncer:
    """Records the queues a worker consumes, and again every lapse while it runs.

    Again, because the record must outlive what can erase it: a Redis that
    lost its data, or a lapse during an outage after which the worker was
    forgotten and came back.
    """

    def __init__(self, services: Services, worker: str, queues: list[str]) -> None:
        self.services = services
        self.worker = worker
        self.queues = queues
        self.stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pmrunner-queues", daemon=True)

    def start(self) -> None:
        self._announce()
        self._thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(self.services.settings.worker_lapse):
            self._announce()

    def _announce(self) -> None:
        try:
            self.services.workers.announce(self.worker, self.queues)
        except redis.RedisError as error:
            log.warning("could not record the queues this worker consumes: %s", error)


_announcers: dict[str, QueueAnnouncer] = {}


@signals.worker_ready.connect
def announce_queues(sender: Any = None, **_: Any) -> None:
    """Record the queues this worker consumes, once it consumes them."""
    app = getattr(sender, "app", None)
    if getattr(app, "main", None) != "pmrunner":
        return
    consumer = getattr(sender, "task_consumer", None)
    queues = [str(queue.name) for queue in getattr(consumer, "queues", None) or []]
    announcer = QueueAnnouncer(Services.of(app), str(sender.hostname), queues)
    _announcers[announcer.worker] = announcer
    announcer.start()


def stop_announcing(**_: Any) -> None:
    """A worker that stops says nothing more (it signs off with its heartbeat)."""
    for announcer in _announcers.values():
        announcer.stopped.set()
    _announcers.clear()


# Asked to stop (a signal), and stopped (also a worker stopped in-process).
signals.worker_shutting_down.connect(stop_announcing, weak=False)
signals.worker_shutdown.connect(stop_announcing, weak=False)
