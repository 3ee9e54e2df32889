"""The in-memory model of a run, which every reporter renders.

A ``Run`` holds ``Execution`` records (one per request sent, or skipped),
each with its request, response, assertions and errors. Failures and stats
are derived from them, so they can never disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: object) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


@dataclass
class Assertion:
    """One test (``pm.test`` or legacy ``tests[...]``) and how it ended."""

    name: str
    passed: bool
    skipped: bool = False
    error: str | None = None
    error_name: str | None = None
    stack: str | None = None


@dataclass
class ScriptError:
    """An error outside assertions: a script that threw, a failed exchange.

    kind: "prerequest-script", "test-script", "request", "auth", "internal".
    """

    kind: str
    name: str
    message: str
    source: str = ""  # the script's owner (collection, folder or item id)


@dataclass
class RequestRecord:
    """What was sent (after variables, auth and scripts), with secrets masked."""

    method: str
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body_mode: str | None = None
    body: str = ""
    body_size: int = 0


@dataclass
class ResponseRecord:
    """What came back; the body is text, capped at the run's ``max_body_bytes``."""

    code: int
    status: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""
    body_truncated: bool = False
    size: int = 0  # bytes of the (decoded) body
    response_time_ms: float = 0.0


@dataclass
class Execution:
    """One request of one iteration, as it ran.

    worker/network say where it ran in a distributed run (None when local).
    """

    id: int
    item_id: str
    item_name: str
    iteration: int
    path: tuple[str, ...] = ()
    request: RequestRecord | None = None
    response: ResponseRecord | None = None
    assertions: list[Assertion] = field(default_factory=list)
    errors: list[ScriptError] = field(default_factory=list)
    skipped: bool = False
    started_at: datetime = field(default_factory=utc_now)
    console: list[tuple[str, str]] = field(default_factory=list)
    worker: str | None = None
    network: str | None = None
    attempt: int = 1
    prerequest_scripts: int = 0  # scripts run before the request (every level counts)
    test_scripts: int = 0

    @property
    def failed(self) -> bool:
        return bool(self.errors) or any(not a.passed and not a.skipped for a in self.assertions)

    def to_dict(self) -> JSON:
        data = _plain(self)
        data["started_at"] = iso(self.started_at)
        return data  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: JSON) -> Execution:
        data = dict(data)
        data["path"] = tuple(data.get("path") or ())
        data["started_at"] = parse_iso(data["started_at"]) or utc_now()
        if data.get("request"):
            req = dict(data["request"])
            req["headers"] = [tuple(h) for h in req.get("headers") or []]
            data["request"] = RequestRecord(**req)
        if data.get("response"):
            res = dict(data["response"])
            res["headers"] = [tuple(h) for h in res.get("headers") or []]
            data["response"] = ResponseRecord(**res)
        data["assertions"] = [Assertion(**a) for a in data.get("assertions") or []]
        data["errors"] = [ScriptError(**e) for e in data.get("errors") or []]
        data["console"] = [tuple(c) for c in data.get("console") or []]
        return cls(**data)


@dataclass
class Failure:
    """A failed assertion or an error, tied to its execution."""

    execution: Execution
    name: str  # "AssertionError", or the error's name
    message: str
    assertion: str | None = None
    kind: str = "assertion"


@dataclass
class Run:
    """A whole run: the collection, the executions, and what they add up to."""

    collection_id: str
    collection_name: str
    executions: list[Execution] = field(default_factory=list)
    iterations: int = 1
    started_at: datetime = field(default_factory=utc_now)
    finished_at: datetime | None = None
    environment: list[JSON] = field(default_factory=list)
    globals: list[JSON] = field(default_factory=list)
    environment_name: str | None = None
    run_errors: list[ScriptError] = field(default_factory=list)  # errors outside a request
    bailed: bool = False
    # Final collection variables and cookie jar of a local run, for newman's
    # --export-collection and --export-cookie-jar; not stored with reports.
    collection_variables: list[JSON] = field(default_factory=list)
    cookies: list[JSON] = field(default_factory=list)

    def failures(self) -> list[Failure]:
        found: list[Failure] = []
        for execution in self.executions:
            for error in execution.errors:
                found.append(Failure(execution, error.name, error.message, kind=error.kind))
            for assertion in execution.assertions:
                if not assertion.passed and not assertion.skipped:
                    found.append(
                        Failure(
                            execution,
                            assertion.error_name or "AssertionError",
                            assertion.error or f"Expected '{assertion.name}' to be truthy",
                            assertion=assertion.name,
                        )
                    )
        return found

    @property
    def failed(self) -> bool:
        return bool(self.run_errors) or any(e.failed for e in self.executions)

    def to_dict(self) -> JSON:
        """JSON-safe form, for the run store and for hand-off between processes."""
        return {
            "collection_id": self.collection_id,
            "collection_name": self.collection_name,
            "executions": [e.to_dict() for e in self.executions],
            "iterations": self.iterations,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "environment": self.environment,
            "globals": self.globals,
            "environment_name": self.environment_name,
            "run_errors": [asdict(e) for e in self.run_errors],
            "bailed": self.bailed,
        }

    @classmethod
    def from_dict(cls, data: JSON) -> Run:
        return cls(
            collection_id=str(data["collection_id"]),
            collection_name=str(data["collection_name"]),
            executions=[Execution.from_dict(e) for e in data.get("executions") or []],
            iterations=int(data.get("iterations") or 1),
            started_at=parse_iso(data["started_at"]) or utc_now(),
            finished_at=parse_iso(data.get("finished_at")),
            environment=list(data.get("environment") or []),
            globals=list(data.get("globals") or []),
            environment_name=data.get("environment_name"),
            run_errors=[ScriptError(**e) for e in data.get("run_errors") or []],
            bailed=bool(data.get("bailed")),
        )

    def stats(self) -> JSON:
        """Totals in newman's shape: total/failed/pending per kind."""
        sent = [e for e in self.executions if not e.skipped]
        assertions = [a for e in self.executions for a in e.assertions]
        errors = [x for e in self.executions for x in e.errors]
        prerequest_run = sum(e.prerequest_scripts for e in self.executions)
        tests_run = sum(e.test_scripts for e in self.executions)
        prerequest_failed = sum(1 for x in errors if x.kind == "prerequest-script")
        tests_failed = sum(1 for x in errors if x.kind == "test-script")
        return {
            "iterations": {"total": self.iterations, "pending": 0, "failed": 0},
            "items": {"total": len(self.executions), "pending": 0, "failed": 0},
            "scripts": {
                "total": prerequest_run + tests_run,
                "pending": 0,
                "failed": prerequest_failed + tests_failed,
            },
            "prerequests": {"total": len(sent), "pending": 0, "failed": 0},
            "requests": {
                "total": len(sent),
                "pending": 0,
                "failed": sum(1 for e in sent if any(x.kind == "request" for x in e.errors)),
            },
            "tests": {"total": len(sent), "pending": 0, "failed": 0},
            "assertions": {
                "total": len(assertions),
                "pending": sum(1 for a in assertions if a.skipped),
                "failed": sum(1 for a in assertions if not a.passed and not a.skipped),
            },
            "testScripts": {"total": tests_run, "pending": 0, "failed": tests_failed},
            "prerequestScripts": {
                "total": prerequest_run,
                "pending": 0,
                "failed": prerequest_failed,
            },
        }


def _plain(value: Any) -> Any:
    """``dataclasses.asdict`` without its deep copy of every leaf value.

    The leaves of an execution (text, numbers, times) are immutable; copying
    them took a tenth of a worker's time per request.
    """
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value
