"""The Celery app (``celery -A worker``)."""
