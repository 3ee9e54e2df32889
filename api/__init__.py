"""pmrunner's HTTP API: Run a Monitor, the Collection Runs API, health and metrics.

``create_api(settings)`` builds the ASGI app; ``pmrunner api`` serves it.
"""

from api.app import create_api

__all__ = ["create_api"]
