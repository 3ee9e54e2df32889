"""What step messages look like: task names, what Flower shows, where they go.

Kept apart from the tasks themselves so that dispatching a run (the CLI, the
API, beat) loads neither the HTTP client nor the script sandbox.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.state import RunState
from runtime.urls import normalize_url, parse_url

if TYPE_CHECKING:
    from runtime.model import Item
    from worker.routing import NetworkMap
    from worker.settings import Settings

EXECUTE_REQUEST = "pmrunner.execute_request"
FINALIZE_RUN = "pmrunner.finalize_run"
JSON = dict[str, Any]


def step_key(branch: str, number: int) -> str:
    return f"{branch}:{number}"


def describe(run_id: str, branch: str, number: int, item_name: str) -> str:
    """What Flower shows for a step instead of its arguments."""
    return f"run={run_id} step={branch}:{number} item={item_name!r}"


def request_host(request: JSON, state: RunState) -> str:
    """The host a request goes to, with ``state``'s variables, as Postman sends it.

    IPv4 shorthands are expanded (``127.1`` is ``127.0.0.1``), names
    lower-cased; a host that names an unset variable keeps its ``{{...}}``,
    and "" means none could be read.
    """
    url = request.get("url")
    raw = url.get("raw") if isinstance(url, dict) else url
    if isinstance(url, dict) and not raw:
        host = url.get("host")
        raw = ".".join(host) if isinstance(host, list) else str(host or "")
    text = state.resolver().resolve(str(raw or ""))
    if not text.strip():
        return ""
    try:
        return parse_url(normalize_url(text)).host
    except ValueError:
        return ""


def step_queue(
    item: Item,
    state: RunState,
    networks: NetworkMap,
    settings: Settings,
    *,
    pin: str | None,
    request: JSON | None = None,
) -> str:
    """The queue of a step: that of the network that reaches its request's host.

    Parameters:
        item: the step's item.
        state: the variables the host is resolved with.
        networks: the run's routing rules.
        settings: names the queues.
        pin: the monitor's network pin (a pin on the item or a folder wins).
        request: the request as the item's pre-request scripts left it. Without
            it (they have not run), a host still unknown that those scripts may
            set sends the step to the control queue, which every worker
            consumes: the scripts run there and hand the step to its network.
    """
    pinned = item.effective_network() or pin
    host = request_host(item.request if request is None else request, state)
    unknown = not host or "{{" in host
    if request is None and unknown and not pinned and item.script_chain("prerequest"):
        return settings.control_queue
    return settings.queue_for(networks.network_for(host, pinned))
