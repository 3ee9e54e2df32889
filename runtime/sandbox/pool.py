"""The process's script contexts: booted ahead of need, each bound to one run.

Postman's runtime gives every collection run a sandbox of its own: what one
script of the run adds to a prototype, the next script sees, and nothing
crosses into another run. ``ContextPool`` keeps that promise on a process that
serves many runs at once (a worker) or one after the other:

- a context is booted fresh (a new V8 isolate, ~0.2 s of CPU), and a booted
  context that no run has used waits in the pool for the next run;
- a run's first script binds one such context to the run's id; every later
  script of that run in this process uses it (threads of one run take turns);
- a context that served a run never serves another: it is closed when the
  run is released (``release``, at the end of a local run), when it has been
  idle for ``idle_seconds`` (a worker does not know when a distributed run
  ends), or when the pool is full and a new run needs room (least recently
  used first);
- at most ``capacity`` contexts exist at once, fresh and bound together, so
  memory stays bounded whatever the number of threads; a run that finds the
  pool full of contexts in use waits for one to be released.

``warm`` fresh contexts are kept booted in the background, so a run does not
wait for a boot (a worker warms them before it consumes: ``warm_up``).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from runtime.options import ScriptLimits
from runtime.sandbox.engine import SandboxContext, ScriptOutcome

DEFAULT_IDLE_SECONDS = 60.0


def default_capacity() -> int:
    """Twice the cores, at least 4: scripts are CPU work, and a context costs ~20 MiB."""
    return max(4, 2 * (os.cpu_count() or 1))


@dataclass
class _Binding:
    """A context bound to a run, with how many scripts use it now."""

    context: SandboxContext
    users: int = 0
    last_used: float = field(default_factory=time.monotonic)
    released: bool = False  # the run ended: close when the last user is done


class ContextPool:
    """Script contexts for the runs of one process (see the module's docstring).

    Parameters:
        capacity: most contexts alive at once (fresh and bound).
        warm: fresh contexts to keep booted ahead of need (0: boot on demand).
        idle_seconds: a run's context unused for this long is closed.
    """

    def __init__(
        self,
        capacity: int | None = None,
        *,
        warm: int = 0,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
    ) -> None:
        self.capacity = max(1, capacity or default_capacity())
        self.warm = max(0, min(warm, self.capacity))
        self.idle_seconds = idle_seconds
        self.console_chars: int | None = None
        self._cond = threading.Condition()
        self._fresh: list[SandboxContext] = []
        self._bound: OrderedDict[str, _Binding] = OrderedDict()
        self._booting = 0
        self._waiting_for_room = 0  # runs in _take_or_make waiting for a context
        self._waiting_for_boot = 0  # runs in _take_or_make waiting for a boot under way
        self._filler: threading.Thread | None = None
        self._closed = False

    # -- configuration and warm-up --------------------------------------

    def configure(
        self,
        *,
        capacity: int | None = None,
        warm: int | None = None,
        idle_seconds: float | None = None,
        console_chars: int | None = None,
    ) -> None:
        """Change the pool's bounds (a worker sets them from its settings).

        Parameters:
            capacity: most contexts alive at once (None: ``default_capacity()``).
            warm: fresh contexts to keep booted ahead of need.
            idle_seconds: a run's context unused for this long is closed.
            console_chars: the console cap of every script run here, whatever
                the run's options say (None: the run's own).
        """
        with self._cond:
            self.capacity = max(1, capacity or default_capacity())
            self.console_chars = console_chars
            if warm is not None:
                self.warm = max(0, min(warm, self.capacity))
            if idle_seconds is not None:
                self.idle_seconds = idle_seconds
            self._cond.notify_all()
        self._start_filler()

    def warm_up(self, timeout: float = 60.0) -> int:
        """Boot ``warm`` fresh contexts now; return how many are ready.

        Blocks until they are booted (or ``timeout`` seconds passed): a
        worker calls it before it consumes, so its first run costs what its
        thousandth does.
        """
        self._start_filler()
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._fresh) < self.warm and time.monotonic() < deadline:
                self._cond.wait(min(0.5, max(deadline - time.monotonic(), 0.01)))
            return len(self._fresh)

    def boot_ahead(self) -> None:
        """Boot one fresh context in the background, unless one is ready or booting.

        For a process about to start a run with scripts (``pmrunner run``): the
        boot (about 0.2 s of CPU, mostly on V8's thread) overlaps the loading
        of the runtime and the run's inputs; ``wait_for_boots`` ends it before
        the first request.
        """
        with self._cond:
            total = len(self._fresh) + len(self._bound) + self._booting
            if self._fresh or self._booting or total >= self.capacity:
                return
            self._booting += 1
        threading.Thread(
            target=self._boot_fresh, args=(0.0,), name="script-context-boot", daemon=True
        ).start()

    def wait_for_boots(self, timeout: float = 60.0) -> None:
        """Wait until no context of the pool is booting (or ``timeout`` seconds passed).

        A local run calls it before its first request: a boot's memory peak
        (the bundle parsed and run) then never adds to that of a large
        response being read.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._booting and time.monotonic() < deadline:
                self._cond.wait(min(0.5, max(deadline - time.monotonic(), 0.01)))

    def stats(self) -> dict[str, int]:
        """How many contexts are fresh, bound to runs, booting; and the capacity."""
        with self._cond:
            return {
                "fresh": len(self._fresh),
                "bound": len(self._bound),
                "booting": self._booting,
                "capacity": self.capacity,
            }

    # -- runs -------------------------------------------------------------

    def scripts_for(self, run_id: str, limits: ScriptLimits | None = None) -> RunScripts:
        """The script engine of run ``run_id`` in this process."""
        limits = limits or ScriptLimits()
        if self.console_chars is not None:
            limits = replace(limits, max_console_chars=self.console_chars)
        return RunScripts(self, run_id, limits)

    def release(self, run_id: str) -> None:
        """The run has ended here: close its context (once no script uses it)."""
        with self._cond:
            binding = self._bound.get(run_id)
            if binding is None:
                return
            if binding.users:
                binding.released = True
                return
            del self._bound[run_id]
            self._cond.notify_all()
        binding.context.close()

    def close(self) -> None:
        """Close every context that no script uses now; the pool stays usable."""
        with self._cond:
            idle = [run for run, binding in self._bound.items() if not binding.users]
            doomed = [self._bound.pop(run).context for run in idle] + self._fresh
            self._fresh = []
            self._cond.notify_all()
        for context in doomed:
            context.close()

    def acquire(self, run_id: str, limits: ScriptLimits) -> SandboxContext:
        """The run's context, bound now if it has none; pair with ``done``."""
        doomed: list[SandboxContext] = []
        try:
            with self._cond:
                doomed.extend(self._expired())
                binding = self._bound.get(run_id)
                if binding is None:
                    binding = _Binding(self._take_or_make(limits, doomed))
                    self._bound[run_id] = binding
                binding.users += 1
                binding.released = False
                self._bound.move_to_end(run_id)
                if doomed:  # room for a run waiting in _take_or_make
                    self._cond.notify_all()
        finally:
            for context in doomed:
                context.close()
        binding.context.use_limits(limits)
        return binding.context

    def done(self, run_id: str) -> None:
        """A script of the run has finished with its context."""
        closing: SandboxContext | None = None
        with self._cond:
            binding = self._bound.get(run_id)
            if binding is None:
                return
            binding.users -= 1
            binding.last_used = time.monotonic()
            if binding.released and not binding.users:
                del self._bound[run_id]
                closing = binding.context
            # Only a run waiting for room cares that a context fell idle: a
            # wake-up per script of every thread waiting on the pool would
            # cost each script two thread switches.
            if closing is not None or (not binding.users and self._waiting_for_room):
                self._cond.notify_all()
        if closing is not None:
            closing.close()

    # -- inside the lock ----------------------------------------------------

    def _take_or_make(self, limits: ScriptLimits, doomed: list[SandboxContext]) -> SandboxContext:
        """A fresh context for a new run, making room within the capacity."""
        while True:
            if self._fresh:
                context = self._fresh.pop()
                self._cond.notify_all()  # the filler may boot a replacement
                return context
            if self._booting > self._waiting_for_boot:
                # A boot under way ends sooner than one started now; runs
                # past the boots under way boot their own, in parallel.
                self._waiting_for_boot += 1
                try:
                    self._cond.wait(1.0)
                finally:
                    self._waiting_for_boot -= 1
                continue
            if len(self._bound) + self._booting < self.capacity:
                return SandboxContext(limits)  # boots on its first script
            victim = self._least_recently_used_idle()
            if victim is not None:
                doomed.append(self._bound.pop(victim).context)
                continue
            self._waiting_for_room += 1
            try:
                self._cond.wait(1.0)
            finally:
                self._waiting_for_room -= 1

    def _least_recently_used_idle(self) -> str | None:
        for run_id, binding in self._bound.items():
            if not binding.users:
                return run_id
        return None

    def _expired(self) -> list[SandboxContext]:
        horizon = time.monotonic() - self.idle_seconds
        stale = [
            run
            for run, binding in self._bound.items()
            if not binding.users and binding.last_used < horizon
        ]
        return [self._bound.pop(run).context for run in stale]

    def _wants_fresh(self) -> bool:
        total = len(self._fresh) + len(self._bound) + self._booting
        return len(self._fresh) + self._booting < self.warm and total < self.capacity

    # -- the background filler ---------------------------------------------

    def _start_filler(self) -> None:
        with self._cond:
            if self.warm == 0 or (self._filler is not None and self._filler.is_alive()):
                return
            self._filler = threading.Thread(target=self._fill, name="script-contexts", daemon=True)
            self._filler.start()

    def _fill(self) -> None:
        """Keep ``warm`` fresh contexts booted; close runs' contexts left idle."""
        while True:
            with self._cond:
                doomed = self._expired()
                boot = not doomed and self._wants_fresh()
                if boot:
                    self._booting += 1
                elif not doomed:
                    self._cond.wait(min(self.idle_seconds / 2, 5.0))
                    continue
            for context in doomed:
                context.close()
            if boot:
                self._boot_fresh()

    def _boot_fresh(self, pause_after_failure: float = 1.0) -> None:
        context = SandboxContext()
        try:
            context.boot()
            booted = True
        except Exception:
            booted = False
            time.sleep(pause_after_failure)  # a failing boot is retried, not spun on
        with self._cond:
            self._booting -= 1
            if booted:
                self._fresh.append(context)
            self._cond.notify_all()


class RunScripts:
    """The script engine of one run in one process: its pool's bound context.

    Each ``execute`` holds the run's context for the time of one script.
    """

    def __init__(self, pool: ContextPool, run_id: str, limits: ScriptLimits) -> None:
        self.pool = pool
        self.run_id = run_id
        self.limits = limits

    def execute(self, **script: Any) -> ScriptOutcome:
        """Run one script of the run: ``SandboxContext.execute``'s parameters."""
        sandbox = self.pool.acquire(self.run_id, self.limits)
        try:
            outcome = sandbox.execute(**script)
            # A long run's heap stays near what its scripts keep. Only a saving:
            # a failure to read or trim the heap must not fail the script.
            with contextlib.suppress(Exception):
                sandbox.trim_heap()
            return outcome
        finally:
            self.pool.done(self.run_id)

    def wait_for_boots(self) -> None:
        """Wait for a context booting ahead of the run (``ContextPool.wait_for_boots``)."""
        self.pool.wait_for_boots()

    def release(self) -> None:
        """The run has ended in this process: close its context."""
        self.pool.release(self.run_id)


_default: ContextPool | None = None
_default_lock = threading.Lock()


def default_pool() -> ContextPool:
    """The process's pool (a worker configures it from its settings)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ContextPool()
        return _default


@contextlib.contextmanager
def scripts_of_run(run_id: str, limits: ScriptLimits | None = None) -> Iterator[RunScripts]:
    """The run's script engine from the default pool, released when the block ends."""
    scripts = default_pool().scripts_for(run_id, limits)
    try:
        yield scripts
    finally:
        scripts.release()
