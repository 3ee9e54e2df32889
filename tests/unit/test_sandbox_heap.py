"""A long run's script heap stays near what its scripts keep alive, and keeps its state."""

from __future__ import annotations

from typing import Any

from runtime.sandbox.engine import HEAP_CHECK_EVERY, HEAP_TRIM_FLOOR
from runtime.sandbox.pool import ContextPool, RunScripts
from tests.unit.test_sandbox import RecordingServices, response, scopes

# About 100 MiB of objects, garbage once the script ends; and a helper on a
# prototype, which every later script of the run must still see.
LARGE_GARBAGE = """
Array.prototype.keptAcrossScripts = 42;
const made = [];
for (let i = 0; i < 1600000; i++) made.push({ i, s: "x" + i });
pm.test("made", () => pm.expect(made.length).to.equal(1600000));
"""
SMALL = 'pm.test("helper", () => pm.expect([].keptAcrossScripts).to.equal(42));'


def execute(scripts: RunScripts, source: str) -> Any:
    return scripts.execute(
        listen="test",
        source=source,
        context={**scopes(), "response": response()},
        services=RecordingServices(),
    )


def heap_size(scripts: RunScripts) -> int:
    """The heap of the run's context, read between two scripts."""
    context = scripts.pool.acquire(scripts.run_id, scripts.limits)
    try:
        isolate = context._isolate
        assert isolate is not None
        return isolate.heap_size()
    finally:
        scripts.pool.done(scripts.run_id)


def test_the_garbage_of_a_run_s_scripts_is_given_back_and_its_state_kept() -> None:
    pool = ContextPool(capacity=1)
    scripts = pool.scripts_for("long-run")
    try:
        assert execute(scripts, LARGE_GARBAGE).assertions[0]["passed"]
        # V8 keeps the heap it grew, garbage and all, for as long as it is not
        # pressed; the run trims it within HEAP_CHECK_EVERY scripts.
        assert heap_size(scripts) > HEAP_TRIM_FLOOR
        for _ in range(HEAP_CHECK_EVERY):
            outcome = execute(scripts, SMALL)
            assert [a["passed"] for a in outcome.assertions] == [True]
        assert heap_size(scripts) < HEAP_TRIM_FLOOR / 2
    finally:
        scripts.release()
        pool.close()
