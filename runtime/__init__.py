"""Executes Postman collections: model, variables, auth, HTTP, scripts, reports.

No Celery inside.
"""
