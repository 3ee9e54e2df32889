"""A worker boots its script contexts before it consumes."""

from __future__ import annotations

from types import SimpleNamespace

from celery import signals

from runtime.sandbox.pool import default_pool
from worker.app import create_app
from worker.settings import Settings
from worker.warmup import prepare_script_contexts


def test_the_worker_signal_sizes_and_warms_the_pool_before_consuming() -> None:
    assert prepare_script_contexts in [ref() for _, ref in signals.worker_init.receivers]
    app = create_app(Settings(script_contexts=3, script_contexts_warm=2, script_console_chars=500))
    pool = default_pool()
    try:
        prepare_script_contexts(sender=SimpleNamespace(app=app))
        stats = pool.stats()
        assert stats["capacity"] == 3
        assert stats["fresh"] == 2  # booted before the handler returned
        scripts = pool.scripts_for("a-run")
        assert scripts.limits.max_console_chars == 500
    finally:
        pool.configure(warm=0)
        pool.console_chars = None
        pool.close()
