"""Celery tasks: dispatch a run, execute one request, finalize, sweep."""
