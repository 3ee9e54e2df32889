"""Every Redis key pmrunner uses, in one place."""

from __future__ import annotations

from dataclasses import dataclass


def text(value: object) -> str:
    """A Redis reply as text (replies are bytes unless the client decodes them)."""
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix (``Settings.key_prefix``)."""

    prefix: str = "pmrunner:"

    def collection(self, digest: str) -> str:
        """A cached collection version (JSON), by content digest."""
        return f"{self.prefix}collection:{digest}"

    def collection_users(self, digest: str) -> str:
        """Set: the runs that still need a cached collection version."""
        return f"{self.prefix}collection-users:{digest}"

    def run(self, run_id: str) -> str:
        """An in-flight run's ticket (JSON)."""
        return f"{self.prefix}run:{run_id}"

    def run_final(self, run_id: str) -> str:
        """Claimed by the one finalizer that reports the run."""
        return f"{self.prefix}run:{run_id}:final"

    def run_results(self, run_id: str) -> str:
        """Hash: step key -> the step's executions (JSON)."""
        return f"{self.prefix}run:{run_id}:results"

    def run_states(self, run_id: str) -> str:
        """Hash: branch key -> the variable state it left (JSON)."""
        return f"{self.prefix}run:{run_id}:states"

    def run_progress(self, run_id: str) -> str:
        """Hash: step key -> attempts and where it started (JSON)."""
        return f"{self.prefix}run:{run_id}:progress"

    def run_done(self, run_id: str) -> str:
        """Set: branches of the run that have ended."""
        return f"{self.prefix}run:{run_id}:done"

    def run_finished(self, run_id: str) -> str:
        """List: pushed once when the run's report is stored (for waiters)."""
        return f"{self.prefix}run:{run_id}:finished"

    def active_runs(self) -> str:
        """Sorted set: in-flight run ids by deadline (Unix seconds)."""
        return f"{self.prefix}runs:active"

    def report(self, run_id: str) -> str:
        """A finished run's report (JSON)."""
        return f"{self.prefix}report:{run_id}"

    def collection_runs(self, collection_id: str) -> str:
        """Sorted set: run ids of a collection by start time (ms)."""
        return f"{self.prefix}collection-runs:{collection_id}"

    def all_runs(self) -> str:
        """Sorted set: every stored run id by start time (ms)."""
        return f"{self.prefix}runs:all"

    def monitor_runs(self, monitor_uid: str) -> str:
        """Sorted set: run ids of a monitor by start time (ms)."""
        return f"{self.prefix}monitor-runs:{monitor_uid}"

    def monitor_runs_filled(self) -> str:
        """Set once every run stored before monitors had an index is in its monitor's index."""
        return f"{self.prefix}runs:monitor-index-filled"

    def monitor_run_counts(self) -> str:
        """Hash: ``<status>:<monitor uid>`` → monitor runs ever stored with that status."""
        return f"{self.prefix}runs:by-monitor"

    def workers(self) -> str:
        """Set: names of workers that heartbeat (lapsed ones until resolved)."""
        return f"{self.prefix}workers"

    def worker_alive(self, worker: str) -> str:
        """Present while the worker heartbeats (it expires after the lapse)."""
        return f"{self.prefix}worker:{worker}:alive"

    def worker_queues(self) -> str:
        """Hash: worker name -> the queues it consumes, comma separated (while it is known)."""
        return f"{self.prefix}workers:queues"

    def run_metrics(self) -> str:
        """Hash: counts derived from stored runs (request latency buckets, assertion failures)."""
        return f"{self.prefix}runs:metrics"

    def worker_steps(self, worker: str) -> str:
        """Hash: ``<run id>|<step key>`` -> the step the worker holds and its phase (JSON)."""
        return f"{self.prefix}worker:{worker}:steps"

    def upkeep_lease(self) -> str:
        """Held by the one process that sweeps, resolves lost workers and delivers webhooks."""
        return f"{self.prefix}upkeep:lease"

    def outbox(self) -> str:
        """Sorted set: webhook deliveries by the time of their next attempt."""
        return f"{self.prefix}outbox"

    def outbox_entry(self, entry_id: str) -> str:
        """One webhook delivery: where it goes, what it carries, its attempts (JSON)."""
        return f"{self.prefix}outbox:{entry_id}"

    def deliveries(self, run_id: str) -> str:
        """List: every delivery attempt of a run's webhooks and notices (JSON)."""
        return f"{self.prefix}deliveries:{run_id}"

    def slot(self, monitor_uid: str, slot: str) -> str:
        """Claimed once per monitor schedule slot."""
        return f"{self.prefix}run-slot:{monitor_uid}:{slot}"
