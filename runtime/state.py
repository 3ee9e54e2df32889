"""The state a run carries from one request to the next, as plain JSON.

Variables of every scope, the iteration's data row and the cookie jar: a
local run keeps it in memory, a distributed run hands it from worker to
worker. This module is light on purpose: dispatching a run needs it, not the
HTTP client or the script sandbox.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runtime.loading import VariableFile
from runtime.model import Collection
from runtime.options import RunOptions
from runtime.variables import VariableResolver, VariableScope, secret_flag_type

if TYPE_CHECKING:
    from runtime.sandbox.engine import ScriptOutcome

JSON = dict[str, Any]
SCOPE_FIELDS = {
    "environment": "environment",
    "globals": "globals",
    "collectionVariables": "collection_variables",
    "_variables": "local",
}


@dataclass
class RunState:
    """The state that flows from one request of a run to the next (JSON-safe).

    local holds ``pm.variables.set`` values, which last for the rest of the run.
    cookies is the jar, exported, for hand-off between processes.
    """

    environment: list[JSON] = field(default_factory=list)
    globals: list[JSON] = field(default_factory=list)
    collection_variables: list[JSON] = field(default_factory=list)
    local: list[JSON] = field(default_factory=list)
    data: JSON = field(default_factory=dict)
    cookies: list[JSON] = field(default_factory=list)
    iteration: int = 0
    iteration_count: int = 1

    def resolver(self) -> VariableResolver:
        return VariableResolver(
            local=VariableScope(self.local),
            data=self.data,
            environment=VariableScope(self.environment),
            collection=VariableScope(self.collection_variables),
            globals=VariableScope(self.globals),
        )

    def sandbox_scopes(self) -> JSON:
        return {name: {"values": getattr(self, attr)} for name, attr in SCOPE_FIELDS.items()}

    def absorb(self, outcome: ScriptOutcome) -> None:
        """Take the scopes a script left, keeping what the sandbox drops.

        The sandbox turns every variable's type into ``any``; a variable that
        was ``secret``, or that a script set as ``secret``, stays secret here,
        so reports keep masking it.
        """
        for name, values in outcome.scopes.items():
            attribute = SCOPE_FIELDS[name]
            setattr(self, attribute, _keep_types(getattr(self, attribute), values))


def _keep_types(before: list[JSON], after: list[JSON]) -> list[JSON]:
    known = {str(entry.get("key")): entry for entry in before}
    kept = []
    for entry in after:
        entry = secret_flag_type(entry)
        previous = known.get(str(entry.get("key")))
        if previous is not None and entry.get("type") in (None, "any") and previous.get("type"):
            entry = {**entry, "type": previous["type"]}
        kept.append(entry)
    return kept


def iteration_count(options: RunOptions, iteration_data: list[dict[str, object]] | None) -> int:
    """newman's rule: -n wins, else one iteration per data row, else one."""
    if options.iterations:
        return options.iterations
    return len(iteration_data) if iteration_data else 1


def initial_state(
    collection: Collection,
    environment: VariableFile | None,
    globals: VariableFile | None,
    count: int,
) -> RunState:
    return RunState(
        environment=copy.deepcopy(environment.values) if environment else [],
        globals=copy.deepcopy(globals.values) if globals else [],
        collection_variables=copy.deepcopy(collection.variables),
        iteration_count=count,
    )
