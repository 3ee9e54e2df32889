"""What every fuzzed input must get: a result, or one InputError line naming the file."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

from pmrunner.errors import InputError

# CI runs 1,000 examples a property; PMRUNNER_FUZZ_EXAMPLES raises or lowers it locally.
EXAMPLES = int(os.environ.get("PMRUNNER_FUZZ_EXAMPLES", "1000"))

FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same examples on every run: a failure in CI fails again here
    deadline=timedelta(seconds=2),  # per example: a slow case fails, it does not wait
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def accepted_or_refused(call: Callable[[], Any], path: Path) -> Any:
    """Call a loader: it returns, or raises an InputError whose one line names ``path``."""
    try:
        return call()
    except InputError as error:
        message = str(error)
        assert "\n" not in message, message
        assert str(path) in message, message
        return None


def file_read_or_refused(
    folder: Path, name: str, content: bytes, *loaders: Callable[[Path], Any]
) -> list[Any]:
    """Write ``content`` to ``folder/name`` and give it to each loader; their results."""
    path = folder / name
    path.write_bytes(content)
    return [accepted_or_refused(lambda load=load: load(path), path) for load in loaders]
