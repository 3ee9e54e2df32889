"""The run planner: which requests of a run may run in parallel, and which in sequence.

Postman runs a collection strictly in order. pmrunner runs independent
requests in parallel and keeps in order the ones that depend on each other.
A request depends on an earlier one when:

- the earlier one's scripts write a variable the later one reads (in its
  URL, headers, body, auth or scripts), or both write the same variable;
- both share cookies: every response, GETs and redirects included, may
  set cookies that a later request to the same cookie scope sends (or its
  scripts read); only ``disableCookies`` takes a request out of the jar;
- the earlier one is not a safe method (anything but GET, HEAD, OPTIONS) and
  both go to the same host: server state a login or a create leaves behind
  is what the later request expects;
- a script's reads or writes cannot be told statically (a computed variable
  name, ``replaceIn``, ``toObject``, ``pm.cookies.jar()``, ``pm.sendRequest``,
  a host its pre-request script sets): then it depends on, or is depended
  on by, everything it could touch.

``scheduler.footprints`` says what each request touches.

If any script calls ``setNextRequest``, the whole run is one dynamic
sequence that follows the scripts, as Postman does. Dependent requests form
a *branch*: each request is still its own task, and the variable and cookie
state goes from one to the next. Connected requests (by the rules above) end
up in one branch, in collection order; the others are branches of one step.
With several iterations, a branch that writes state or changes the server
runs iteration after iteration; a stateless request runs every iteration in
parallel.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from runtime.model import Item
from scheduler.footprints import ANY, Footprint, footprint, overlap, script_code, variable_writes

__all__ = ["ANY", "Branch", "Plan", "StepRef", "depends", "plan_run", "uses_flow_control"]
_FLOW = re.compile(r"setNextRequest\s*\(")


@dataclass(frozen=True)
class StepRef:
    """One request of one iteration."""

    item_id: str
    iteration: int


@dataclass
class Branch:
    """Steps that run one after the other; ``dynamic`` follows setNextRequest."""

    key: str
    steps: list[StepRef] = field(default_factory=list)
    dynamic: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "dynamic": self.dynamic,
            "steps": [[s.item_id, s.iteration] for s in self.steps],
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Branch:
        steps = [StepRef(str(i), int(n)) for i, n in data["steps"]]  # type: ignore[attr-defined]
        return cls(str(data["key"]), steps, bool(data.get("dynamic")))


@dataclass
class Plan:
    """The branches of a run; together they hold every step exactly once
    (a dynamic branch holds the items, and the scripts decide the steps)."""

    branches: list[Branch]
    iterations: int

    @property
    def parallel(self) -> int:
        return len(self.branches)

    def to_dict(self) -> dict[str, object]:
        return {"iterations": self.iterations, "branches": [b.to_dict() for b in self.branches]}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Plan:
        branches = [Branch.from_dict(b) for b in data["branches"]]  # type: ignore[attr-defined]
        return cls(branches, int(data["iterations"]))  # type: ignore[call-overload]


def depends(earlier: Footprint, later: Footprint) -> bool:
    """Whether ``later`` must run after ``earlier``.

    It must when ``earlier`` writes a variable ``later`` reads or writes, when
    ``earlier`` may write cookies ``later`` reads or writes (every request
    reads and writes its host's cookie scope), and when ``earlier`` changes
    the server (not a safe method) of ``later``'s host.
    """
    if overlap(earlier.writes, later.reads) or overlap(earlier.writes, later.writes):
        return True
    if overlap(earlier.cookie_writes, later.cookie_reads | later.cookie_writes):
        return True
    if not earlier.safe:
        return earlier.host is None or later.host is None or earlier.host == later.host
    return False


def uses_flow_control(items: Iterable[Item]) -> bool:
    return any(
        _FLOW.search(script.source)
        for item in items
        for kind in ("prerequest", "test")
        for script in item.script_chain(kind)
    )


def plan_run(items: list[Item], iterations: int, resolve: Callable[[str], str]) -> Plan:
    """Split a run of ``items`` x ``iterations`` into branches.

    Parameters:
        items: the requests to run, in collection order (after folder selection).
        iterations: how many iterations the run has.
        resolve: resolves ``{{variables}}`` with the run's initial variables,
            so hosts behind a ``{{baseUrl}}`` are known.
    """
    iterations = max(iterations, 1)
    if uses_flow_control(items):
        steps = [StepRef(item.id, n) for n in range(iterations) for item in items]
        return Plan([Branch("b0", steps, dynamic=True)], iterations)
    written = set().union(*(variable_writes(script_code(item)) for item in items))
    prints = [footprint(item, resolve, written) for item in items]
    groups = _connected(prints)
    branches: list[Branch] = []
    for members in groups:
        stateful = len(members) > 1 or any(prints[m].stateful for m in members)
        if stateful:
            steps = [StepRef(items[m].id, n) for n in range(iterations) for m in members]
            branches.append(Branch("", steps))
        else:
            branches.extend(
                Branch("", [StepRef(items[m].id, n)]) for n in range(iterations) for m in members
            )
    branches.sort(key=lambda b: (b.steps[0].iteration, _position(items, b.steps[0].item_id)))
    for number, branch in enumerate(branches):
        branch.key = f"b{number}"
    return Plan(branches, iterations)


def _position(items: list[Item], item_id: str) -> int:
    return next(n for n, item in enumerate(items) if item.id == item_id)


def _connected(prints: list[Footprint]) -> list[list[int]]:
    """Groups of item indexes linked by dependencies, each in collection order."""
    parent = list(range(len(prints)))

    def root(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for later in range(len(prints)):
        for earlier in range(later):
            if depends(prints[earlier], prints[later]):
                parent[root(later)] = root(earlier)
    groups: dict[int, list[int]] = {}
    for index in range(len(prints)):
        groups.setdefault(root(index), []).append(index)
    return sorted(groups.values(), key=lambda members: members[0])
