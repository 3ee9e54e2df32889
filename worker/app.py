"""The Celery app: ``celery -A worker worker|beat|flower|inspect``.

Broker and result backend are the same Redis (``PMRUNNER_REDIS_URL``).
Request workers use the threads pool (outbound HTTP is I/O bound) with
prefetch 1, late acks and ``reject_on_worker_lost``; every task enforces its
own deadlines, since the threads pool has no Celery time limits.
"""

from __future__ import annotations

import sys
from urllib.parse import parse_qs, urlsplit

from celery import Celery

from worker.backend import backend_url
from worker.memory import on_worker_init  # noqa: F401 (connects the signal, before warm-up)
from worker.queues import stamp_sent_at  # noqa: F401 (connects the signal)
from worker.roles import control_routes
from worker.settings import Settings
from worker.warmup import prepare_script_contexts  # noqa: F401 (connects the signal)

# Redis reconnection: attempts at most this far apart, for redis_retry_seconds.
RECONNECT_INTERVAL_MAX = 1.0

TASK_MODULES = ["tasks.keycheck", "tasks.run", "tasks.upkeep", "tasks.schedule", "tasks.presence"]


def celery_urls(redis_url: str) -> tuple[str, str]:
    """Celery's broker and result-backend URLs for pmrunner's Redis URL.

    ``redis://`` and ``rediss://`` URLs serve as they are. A ``unix://``
    socket (the embedded Redis) is spelled differently by kombu
    (``redis+socket://``) and by Celery's backend (``socket://``).
    """
    parts = urlsplit(redis_url)
    if parts.scheme != "unix":
        return redis_url, backend_url(redis_url)
    db = parse_qs(parts.query).get("db", ["0"])[0]
    return (
        f"redis+socket://{parts.path}?virtual_host={db}",
        backend_url(f"socket://{parts.path}?db={db}"),
    )


def create_app(settings: Settings | None = None) -> Celery:
    """A configured Celery app for ``settings`` (from the environment by default)."""
    settings = settings or Settings.from_env()
    broker, backend = celery_urls(settings.redis_url)
    # Broker connections file and unfile messages in one script call each (worker.broker).
    app = Celery("pmrunner", broker=broker, backend=backend, amqp="worker.broker:RunAMQP")
    app.conf.update(
        include=TASK_MODULES,
        task_default_queue=settings.queue_for(settings.default_network),
        task_routes=control_routes(settings),
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_track_started=False,
        task_send_sent_event=False,
        # Task events cost a PUBLISH or more per task; Flower turns them on
        # when it starts (enable_events), and `-E` turns them on from the start.
        worker_send_task_events=False,
        worker_prefetch_multiplier=1,
        worker_pool="threads",
        worker_concurrency=32,
        worker_hijack_root_logger=False,
        worker_consumer="worker.consumer:ReconnectingConsumer",
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker outlives any Redis outage
        broker_transport_options={"visibility_timeout": settings.visibility_timeout},
        task_publish_retry_policy=_retry_policy(settings),
        result_backend_always_retry=True,
        result_backend_max_retries=_attempts(settings),
        result_backend_max_sleep_between_retries_ms=int(RECONNECT_INTERVAL_MAX * 1000),
        result_backend_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            "retry_policy": _retry_policy(settings),
        },
        result_expires=int(settings.run_deadline * 4),
        result_extended=False,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        beat_schedule={},  # monitors are scheduled by threads in beat (tasks.schedule)
        # Beat keeps no state of its own: Celery's default scheduler would write
        # celerybeat-schedule.* into the working directory for an empty schedule.
        beat_scheduler="celery.beat:Scheduler",
    )
    app.pmrunner_settings = settings
    return app


def _attempts(settings: Settings) -> int:
    return max(int(settings.redis_retry_seconds / RECONNECT_INTERVAL_MAX), 1)


def _retry_policy(settings: Settings) -> dict[str, float]:
    """Kombu's retry policy: keep trying for about ``redis_retry_seconds``."""
    return {
        "max_retries": _attempts(settings),
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": RECONNECT_INTERVAL_MAX,
    }


def worker_command(
    queues: list[str], *, concurrency: int = 32, name: str | None = None, events: bool = False
) -> list[str]:
    """The command line of a request worker consuming ``queues``, in this interpreter.

    Parameters:
        queues: Celery queues (``net.<name>``).
        concurrency: threads.
        name: the worker's node name (``net-a@%h``); Celery's default when None.
        events: send task events from the start (Flower also turns them on).
    """
    argv = [sys.executable, "-m", "celery", "-A", "worker", "worker", "-Q", ",".join(queues)]
    argv += ["-P", "threads", "-c", str(concurrency), "--without-gossip", "--without-mingle"]
    argv += ["-l", "WARNING"]
    if name:
        argv += ["-n", name]
    if events:
        argv.append("-E")
    return argv


app = create_app()
