"""What step messages look like: task names, what Flower shows, where they go.

Kept apart from the tasks themselves so that dispatching a run (the CLI, the
API, beat) loads neither the HTTP client nor the script sandbox.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from runtime.state import RunState

EXECUTE_REQUEST = "pmrunner.execute_request"
FINALIZE_RUN = "pmrunner.finalize_run"
JSON = dict[str, Any]


def step_key(branch: str, number: int) -> str:
    return f"{branch}:{number}"


def describe(run_id: str, branch: str, number: int, item_name: str) -> str:
    """What Flower shows for a step instead of its arguments."""
    return f"run={run_id} step={branch}:{number} item={item_name!r}"


def request_host(request: JSON, state: RunState) -> str:
    """The host a request goes to, with ``state``'s variables ("" when unknown)."""
    url = request.get("url")
    raw = url.get("raw") if isinstance(url, dict) else url
    if isinstance(url, dict) and not raw:
        host = url.get("host")
        raw = ".".join(host) if isinstance(host, list) else str(host or "")
    text = state.resolver().resolve(str(raw or ""))
    if "://" not in text:
        text = "http://" + text
    try:
        return (urlsplit(text).hostname or "").lower()
    except ValueError:
        return ""
