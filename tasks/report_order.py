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

A report waits that way at most :data:`REPORT_WAIT_MAX`: under a stream of
request steps that never lets up it would otherwise wait until the run's
deadline. The upkeep (every second, one process at a time) moves reports
queued longer than that ahead of the waiting steps (:class:`ReportPromoter`).
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
from worker.queues import SENT_AT_HEADER, priority_list
from worker.roles import REPORT_PRIORITY

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


# How long a queued report may wait behind request steps before it goes first.
REPORT_WAIT_MAX = 5.0
# Reports moved by one call at most: the script stays short however many wait.
_PROMOTE_BATCH = 100

# KEYS: the reports' list (priority 9), the list BRPOP takes first (priority 0).
# ARGV: the latest send time that counts as overdue, the most messages to move,
# the header of the send time.
# Looks only at the reports' oldest end (kombu pushes left and pops right) and
# moves the overdue ones to the right of the priority-0 list, the oldest
# rightmost: they are the next messages taken from it. One script: a message
# is in one list or the other, never both, never neither.
_PROMOTE = """
local moved = {}
while #moved < tonumber(ARGV[2]) do
  local oldest = redis.call('LINDEX', KEYS[1], -1)
  if not oldest then break end
  local ok, message = pcall(cjson.decode, oldest)
  local sent = ok and type(message) == 'table' and type(message.headers) == 'table'
    and tonumber(message.headers[ARGV[3]])
  -- A message without a send time moves too: it must not hold back those behind it.
  if sent and sent > tonumber(ARGV[1]) then break end
  moved[#moved + 1] = redis.call('RPOP', KEYS[1])
end
for index = #moved, 1, -1 do
  redis.call('RPUSH', KEYS[2], moved[index])
end
return #moved
"""


class ReportPromoter:
    """Moves reports that waited longer than :data:`REPORT_WAIT_MAX` ahead of request steps.

    Parameters:
        services: the process's services (its Redis client and control queue).
        wait_max: seconds a report may wait at the report priority
            (:data:`REPORT_WAIT_MAX` by default).
    """

    def __init__(self, services: Services, wait_max: float | None = None) -> None:
        queue = services.settings.control_queue
        self.keys = [priority_list(queue, REPORT_PRIORITY), priority_list(queue, 0)]
        self.wait_max = REPORT_WAIT_MAX if wait_max is None else wait_max
        self._promote = services.registry.redis.register_script(_PROMOTE)

    def run_once(self, now: float | None = None) -> int:
        """Move the overdue reports; how many moved. Raises ``redis.RedisError``.

        Parameters:
            now: the time to judge by (Unix seconds; the clock's by default).
        """
        now = time.time() if now is None else now
        moved = int(
            self._promote(
                keys=self.keys, args=[now - self.wait_max, _PROMOTE_BATCH, SENT_AT_HEADER]
            )
        )
        if moved:
            log.info(
                "%d report(s) waited over %.0f s behind request steps: taken next",
                moved,
                self.wait_max,
            )
        return moved
