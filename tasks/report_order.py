"""Who goes first on a busy worker: other runs' requests, then this run's report.

The step that ends a run's last branch reports the run itself when its
worker has nothing else to do: the report is then ready as soon as it can
be. When the worker is running steps of other runs, building the report
(reading every step's result, assembling, storing, announcing) would take
the interpreter from them; with a thousand monitors due in the same second
it doubled the time until the last run's first request. So on a busy worker
the step leaves the report to a ``finalize_run`` sent at the report priority
(:data:`worker.roles.REPORT_PRIORITY`), which every worker takes only when no
request step waits in the queues it consumes. The chord's own callback,
which follows the step, does nothing then when the report is already made
(the report is claimed ``SET NX``, once).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.worker import state as worker_state

from store import RunTicket
from store.launch import SENT_AT
from tasks.context import Services
from tasks.messages import EXECUTE_REQUEST
from tasks.publish import report_push

log = logging.getLogger(__name__)


def other_runs_stepping(run_id: str) -> bool:
    """Whether this worker process is running a step of another run than ``run_id`` now."""
    # list() of the WeakSet's underlying set is one C call: no other thread changes it meanwhile.
    for reference in list(worker_state.active_requests.data):
        request: Any = reference()
        if request is None or request.task_name != EXECUTE_REQUEST:
            continue
        args = request.args
        if args and args[0] != run_id:
            return True
    return False


def report_later(services: Services, run_id: str, ended: int, ticket: RunTicket) -> bool:
    """Leave the report of a run whose last branch just ended to a ``finalize_run`` behind
    the requests waiting, if this worker is busy with other runs; False to report now.

    Parameters:
        services: the worker's services (its app sends the message).
        run_id: the run.
        ended: the branches of the run that have ended, as just counted.
        ticket: the run's ticket (its plan says how many branches there are).
    """
    if ended < len(ticket.plan["branches"]) or not other_runs_stepping(run_id):
        return False
    key, message = report_push(services.app, run_id, services.settings.control_queue)
    try:
        services.registry.redis.lpush(key, message.replace(SENT_AT, f"{time.time():.3f}", 1))
    except Exception:  # Redis is out of reach: report now rather than never
        log.warning("could not queue the report of run %s; reporting it now", run_id)
        return False
    return True
