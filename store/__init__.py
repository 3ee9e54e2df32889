"""Redis-backed state: in-flight runs (the registry) and finished run reports (the run store)."""

from store.keys import Keys
from store.records import RunTicket
from store.registry import RunRegistry
from store.runs import RunPage, RunStore

__all__ = ["Keys", "RunPage", "RunRegistry", "RunStore", "RunTicket"]
