"""Listeners that follow a run as it happens (reporters, progress, metrics)."""

from __future__ import annotations

from typing import Protocol

from runtime.results import Execution, Run


class RunListener(Protocol):
    """Called by the runner as the run goes; every method is optional in spirit.

    Subclass ``NullListener`` to implement only the ones you need.
    """

    def run_started(self, run: Run) -> None: ...

    def iteration_started(self, run: Run, iteration: int) -> None: ...

    def execution_started(self, run: Run, execution: Execution) -> None: ...

    def execution_finished(self, run: Run, execution: Execution) -> None: ...

    def run_finished(self, run: Run) -> None: ...


class NullListener:
    """A listener that does nothing; reporters override what they need."""

    def run_started(self, run: Run) -> None:
        pass

    def iteration_started(self, run: Run, iteration: int) -> None:
        pass

    def execution_started(self, run: Run, execution: Execution) -> None:
        pass

    def execution_finished(self, run: Run, execution: Execution) -> None:
        pass

    def run_finished(self, run: Run) -> None:
        pass


class Listeners(NullListener):
    """Fans every call out to several listeners."""

    def __init__(self, listeners: list[RunListener]) -> None:
        self.listeners = listeners

    def run_started(self, run: Run) -> None:
        for listener in self.listeners:
            listener.run_started(run)

    def iteration_started(self, run: Run, iteration: int) -> None:
        for listener in self.listeners:
            listener.iteration_started(run, iteration)

    def execution_started(self, run: Run, execution: Execution) -> None:
        for listener in self.listeners:
            listener.execution_started(run, execution)

    def execution_finished(self, run: Run, execution: Execution) -> None:
        for listener in self.listeners:
            listener.execution_finished(run, execution)

    def run_finished(self, run: Run) -> None:
        for listener in self.listeners:
            listener.run_finished(run)
