"""The Celery app (``celery -A worker``), its settings and request routing."""

from worker.app import app, create_app
from worker.settings import Settings

__all__ = ["Settings", "app", "create_app"]
