"""Run Postman scripts in Postman's own sandbox, inside an embedded V8.

A ``SandboxContext`` is one V8 context (``mini-racer``) booted with the host
shim (``host.js``) and Postman's sandbox bundle. It is reused for every script
of the thread that created it: V8 contexts must not cross ``fork()`` or
threads, and booting costs about a tenth of a second. After a script is
stopped for time or memory the context is thrown away and booted afresh.

Scripts reach Python for two services, through ``ScriptServices``:
``pm.sendRequest`` and the cookie jar (``pm.cookies.jar()``).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson
from py_mini_racer import JSOOMException, JSTimeoutException
from py_mini_racer._exc import JSEvalException

from pmrunner.errors import SandboxError, ScriptMemoryError, ScriptTimeoutError
from runtime.options import ScriptLimits
from runtime.sandbox.bundle import installed_bundle
from runtime.sandbox.isolate import Isolate
from runtime.sandbox.legacy import uses_legacy_api
from runtime.sandbox.wire import js_string, json_of
from runtime.variables import SECRET_TYPE_SHIM

JSON = dict[str, Any]
HOST_SHIM = Path(__file__).with_name("host.js")
# Time the Python side grants beyond the sandbox's own timeout, so that the
# sandbox reports an asynchronous timeout itself when it can.
GRACE_SECONDS = 0.25
BOOT_TIMEOUT_SECONDS = 30.0
# Turns asked for at once after a dispatch: a one-line test script gives its
# result on the second (its assertions and the sandbox's first timer; the
# timer that sends the result). Turns past a message Python must answer do
# nothing (see host.js), so asking for more than needed costs only their
# evaluation (some 25 us of CPU each).
TURNS_PER_BATCH = 2
# V8 collects its old generation lazily and, embedded here, never gets the idle
# time in which it would give free heap back: its heap grew to 95 MiB at 2,000
# scripts and 137 MiB at 8,000, around 10 MiB of live objects. Every
# HEAP_CHECK_EVERY scripts the heap's size is read (about 0.5 ms); past
# HEAP_TRIM_FLOOR and twice its size after the last trim, a full collection
# (about 20 ms) gives the garbage back. The floor is above where V8 settles on
# its own for scripts that make much garbage (53 MiB): a trim shrinks the young
# generation too, and such scripts then run slower until it has grown again.
HEAP_CHECK_EVERY = 50
HEAP_TRIM_FLOOR = 64 * 2**20


class ScriptServices(Protocol):
    """What a script may ask of the runner while it runs."""

    def send_request(
        self, request: JSON, *, timeout: float | None = None
    ) -> tuple[JSON | None, JSON | None]:
        """Send a ``pm.sendRequest`` request; return (error, response) as sandbox JSON.

        timeout: seconds the exchange may take (what is left of the script's time).
        """
        ...

    def cookie_store(self, method: str, args: list[Any]) -> Any:
        """Run a tough-cookie store method (findCookies, putCookie, ...) on the run's jar."""
        ...


@dataclass
class ScriptOutcome:
    """What one script execution produced.

    scopes: the variable scopes after the script, by the sandbox's names
    (``environment``, ``globals``, ``collectionVariables``, ``_variables``),
    each a list of variable entries. request: the request after a
    pre-request script changed it. next_request: ``setNextRequest``'s argument
    when it was called (``None`` ends the iteration); ``has_next_request`` says
    whether it was.
    """

    assertions: list[JSON] = field(default_factory=list)
    errors: list[JSON] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)
    scopes: dict[str, list[JSON]] = field(default_factory=dict)
    request: JSON | None = None
    has_next_request: bool = False
    next_request: str | None = None
    skip_request: bool = False
    visualizer: JSON | None = None


_WRAPPER_HEAD = "module.exports=c=>c(null,"
_WRAPPER_TAIL = ")"
_bootcode_lock = threading.Lock()
_create_lock = threading.Lock()
_bootcode: str | None = None
_host_code: str | None = None


def _host_shim() -> str:
    global _host_code
    if _host_code is None:
        _host_code = HOST_SHIM.read_text(encoding="utf-8")
    return _host_code


def bootcode() -> str:
    """The sandbox bundle's code.

    The npm file wraps it in a CommonJS module, ``module.exports=c=>c(null,"...")``,
    whose string literal is valid JSON: decoding it here is much faster than
    evaluating the wrapper in V8 (the bundle's digest is pinned, so is its shape).
    orjson decodes the literal from the file's bytes (4 ms, where reading the
    file as text and ``json.loads`` took 20 ms of every boot's start).
    """
    global _bootcode
    with _bootcode_lock:
        if _bootcode is None:
            wrapper = installed_bundle().read_bytes().strip()
            head, tail = _WRAPPER_HEAD.encode(), _WRAPPER_TAIL.encode()
            if not (wrapper.startswith(head) and wrapper.endswith(tail)):
                raise SandboxError("the sandbox bundle is not in the expected CommonJS form")
            try:
                code = orjson.loads(wrapper[len(head) : -len(tail)])
            except orjson.JSONDecodeError as error:
                raise SandboxError(f"the sandbox bundle's code is not a string: {error}") from None
            if not isinstance(code, str) or not code:
                raise SandboxError("the sandbox bundle did not yield its boot code")
            _bootcode = code
        return _bootcode


# A boot script, run before any script of the context: it installs the
# secret-type shim and hands the host the libraries scripts see (see host.js).
_LIBRARIES = "__pmLibraries = { JSON: JSON };"


def _boot_event(protect_builtins: bool) -> JSON:
    source = SECRET_TYPE_SHIM + (_LIBRARIES if protect_builtins else "")
    return {"listen": "test", "script": {"type": "text/javascript", "exec": source}}


class _NoServices:
    """The services of the boot script, which asks for none."""

    def send_request(
        self, request: JSON, *, timeout: float | None = None
    ) -> tuple[JSON | None, JSON | None]:
        return {"name": "Error", "message": "not available while booting"}, None

    def cookie_store(self, method: str, args: list[Any]) -> Any:
        raise SandboxError("not available while booting")


_NO_SERVICES = _NoServices()


class SandboxContext:
    """One V8 isolate running Postman's sandbox, for the scripts of one run.

    Scripts of one run share it, as they share one sandbox in Postman's
    runtime: what a script adds to a prototype is there for the next script.
    It must never serve another run (``runtime.sandbox.pool`` sees to that).
    ``execute`` holds a lock, so threads of one run may share a context.

    Every piece of JavaScript runs inside an evaluation bounded by the
    script's deadline: timers are run from Python (see ``host.js``), and an
    evaluation that overruns stops the isolate, which is then closed and
    booted afresh for the next script.

    Parameters:
        limits: memory, time and console limits.
        protect_builtins: make the built-ins refuse to be replaced (on by
            default; off only to measure what the protection costs).
    """

    def __init__(
        self, limits: ScriptLimits | None = None, *, protect_builtins: bool = True
    ) -> None:
        self.limits = limits or ScriptLimits()
        self.protect_builtins = protect_builtins
        self._isolate: Isolate | None = None
        # Names the large texts a dispatch carries apart from its JSON (see
        # host.js); unguessable, so that no value of a run's data means one.
        self._attachment_key = f"__pmText{uuid.uuid4().hex}"
        self._lock = threading.Lock()
        self.boots = 0
        self._scripts_since_heap_check = 0
        self._trim_above = HEAP_TRIM_FLOOR

    # -- lifecycle -------------------------------------------------------

    @property
    def booted(self) -> bool:
        return self._isolate is not None

    def use_limits(self, limits: ScriptLimits) -> None:
        """Apply a run's limits (the memory limit at once, if booted)."""
        with self._lock:
            if limits == self.limits:
                return
            self.limits = limits
            if self._isolate is not None:
                self._isolate.set_memory_limit(limits.max_memory_bytes)

    def boot(self) -> None:
        """Boot the isolate now, unless it is booted already."""
        with self._lock:
            self._isolate_ready()

    def _boot(self) -> Isolate:
        # One isolate created at a time: the first creation initialises V8 for
        # the process, and two threads doing it at once (a worker's first
        # parallel steps) crash it.
        with _create_lock:
            isolate = Isolate()
        self._isolate = isolate
        try:
            isolate.set_memory_limit(self.limits.max_memory_bytes)
            deadline = time.monotonic() + BOOT_TIMEOUT_SECONDS
            isolate.eval_all([_host_shim(), bootcode()], deadline)
            self.boots += 1
            turns = self._exchange([["initialize", {}]], deadline)
            for name, *args in (message for turn in turns for message in turn["messages"]):
                if name == "initialize" and args and args[0]:
                    raise SandboxError(f"the sandbox failed to initialise: {args[0]}")
            boot_event = _boot_event(self.protect_builtins)
            outcome = self._run(uuid.uuid4().hex, boot_event, {}, {}, _NO_SERVICES, deadline)
            if outcome.errors:
                raise SandboxError(f"the sandbox's boot script failed: {outcome.errors[0]}")
            guard = "true" if self.protect_builtins else "false"
            isolate.eval(f"__pmHost.protect({guard})", deadline)
        except BaseException:
            self.reset()
            raise
        return isolate

    def _isolate_ready(self) -> Isolate:
        return self._isolate if self._isolate is not None else self._boot()

    def reset(self) -> None:
        """Close the isolate (stopping whatever runs in it); the next script boots a new one."""
        isolate, self._isolate = self._isolate, None
        if isolate is not None:
            # A broken isolate may fail to close; it is dropped either way.
            with contextlib.suppress(Exception):
                isolate.close()

    close = reset

    def trim_heap(self) -> bool:
        """After a script: give V8's garbage back when its heap has outgrown what it keeps.

        Cheap between checks (a count); returns whether a collection ran.
        """
        with self._lock:
            self._scripts_since_heap_check += 1
            isolate = self._isolate
            if isolate is None or self._scripts_since_heap_check < HEAP_CHECK_EVERY:
                return False
            self._scripts_since_heap_check = 0
            if isolate.heap_size() <= self._trim_above:
                return False
            isolate.collect_garbage()
            self._trim_above = max(HEAP_TRIM_FLOOR, 2 * isolate.heap_size())
            return True

    # -- evaluations, each bounded by the script's deadline --------------

    def _exchange(
        self, dispatches: list[list[Any]] | None, deadline: float, prefix: str = ""
    ) -> list[JSON]:
        """Dispatch messages into the sandbox (if any), then take a batch of turns.

        A turn hands over the messages gathered since the last one and the
        delay to the next timer, and runs the due timers when no message needs
        Python first. Each turn is its own evaluation, after the promise jobs
        of the one before: a job that does not end makes the batch time out.
        """
        isolate = self._isolate
        assert isolate is not None
        codes = ["__pmHost.turn()"] * TURNS_PER_BATCH
        if dispatches is not None:
            literal, texts = js_string(dispatches, self._attachment_key)
            if texts:
                holder = isolate.eval("__pmHost.attachments", deadline)
                for index, text in enumerate(texts):
                    isolate.set_text(holder, str(index), text)
                send = f"__pmHost.send({literal}, {json.dumps(self._attachment_key)})"
            else:
                send = f"__pmHost.send({literal})"
            codes.insert(0, prefix + send)
        answers = isolate.eval_all(codes, deadline)
        turns: list[JSON] = [json_of(answer) for answer in answers[-TURNS_PER_BATCH:]]
        return turns

    # -- executing scripts -----------------------------------------------

    def execute(
        self,
        *,
        listen: str,
        source: str,
        context: JSON,
        services: ScriptServices,
        timeout_ms: int = 0,
        cursor: JSON | None = None,
        legacy: JSON | None = None,
    ) -> ScriptOutcome:
        """Run one script and return what it did.

        Parameters:
            listen: "prerequest" or "test".
            source: the script's JavaScript.
            context: the sandbox context (request, response, variable scopes, data, cookies).
                Its ``bytes`` values are UTF-8 texts, handed to V8 apart from
                the JSON (large bodies: see ``wire.js_string``).
            services: where ``pm.sendRequest`` and cookie-jar calls go.
            timeout_ms: the script's time limit (0: the limits' default). It
                covers the timers, promises and ``pm.sendRequest`` calls the
                script starts.
            cursor: iteration and position, for ``pm.info``.
            legacy: item id/name/path, for ``pm.info`` and the legacy globals.

        Raises ScriptTimeoutError or ScriptMemoryError when a limit stops the
        script (the context is then rebooted for the next script), and
        SandboxError when the sandbox itself fails.
        """
        limit_ms = timeout_ms if timeout_ms > 0 else self.limits.default_timeout_ms
        execution_id = uuid.uuid4().hex
        script = {"type": "text/javascript", "exec": source}
        event = {"listen": listen, "script": script}
        options = {
            "cursor": cursor or {},
            "timeout": limit_ms,
            "debug": True,  # routes console calls through the host's console
            "legacy": legacy or {},
            # The legacy globals' setup is a good part of a short script's time.
            "disableLegacyAPIs": not uses_legacy_api(source),
        }
        with self._lock:
            self._isolate_ready()
            # The sandbox reports an asynchronous timeout itself at limit_ms;
            # the grace lets it do so before the engine stops it.
            deadline = time.monotonic() + limit_ms / 1000 + GRACE_SECONDS
            try:
                return self._run(execution_id, event, context, options, services, deadline)
            except (JSTimeoutException, TimeoutError) as error:
                self.reset()
                raise ScriptTimeoutError(f"script timed out after {limit_ms} ms") from error
            except JSOOMException as error:
                self.reset()
                raise ScriptMemoryError(
                    "script exceeded the memory limit of "
                    f"{self.limits.max_memory_bytes // 2**20} MiB"
                ) from error
            except JSEvalException as error:
                self.reset()
                raise SandboxError(f"sandbox failure: {error}") from error
            except SandboxError:
                self.reset()  # the sandbox is in no state to run the next script
                raise

    def _run(
        self,
        execution_id: str,
        event: JSON,
        context: JSON,
        options: JSON,
        services: ScriptServices,
        deadline: float,
    ) -> ScriptOutcome:
        outcome = ScriptOutcome()
        begin = f"__pmHost.begin({int(self.limits.max_console_chars)});"
        dispatches: list[list[Any]] | None = [["execute", execution_id, event, context, options]]
        turns = self._exchange(dispatches, deadline, begin)
        while True:
            replies: list[list[Any]] = []
            for turn in turns:
                for message in turn["messages"]:
                    if self._handle(message, execution_id, outcome, services, replies, deadline):
                        return outcome
            if replies:
                turns = self._exchange(replies, deadline)
                continue
            delay = float(turns[-1]["timer"])
            if delay < 0:
                raise SandboxError("the script waits for an event the runner does not provide")
            if time.monotonic() + delay / 1000 >= deadline:
                time.sleep(max(deadline - time.monotonic(), 0))
                raise TimeoutError
            if delay > 0:
                time.sleep(delay / 1000)
            turns = self._exchange(None, deadline)

    def _handle(
        self,
        message: list[Any],
        execution_id: str,
        outcome: ScriptOutcome,
        services: ScriptServices,
        replies: list[list[Any]],
        deadline: float,
    ) -> bool:
        """Apply one message; return True when the execution has finished."""
        name, args = message[0], message[1:]
        suffix = "." + execution_id
        if name == "__console":
            outcome.console.append((str(args[0]), str(args[1])))
        elif name == "execution.assertion" + suffix:
            outcome.assertions.extend(args[1])
        elif name == "execution.error" + suffix:
            outcome.errors.append(_error_json(args[1]))
        elif name == "execution.skipRequest" + suffix:
            outcome.skip_request = True
        elif name == "execution.request" + suffix:
            _cursor, _id, event_id, request = args
            remaining = deadline - GRACE_SECONDS - time.monotonic()
            error: JSON | None = {"name": "Error", "message": "script time limit reached"}
            response: JSON | None = None
            if remaining > 0:
                error, response = services.send_request(request, timeout=remaining)
            replies.append(["execution.response" + suffix, event_id, error, response, {}])
        elif name == "execution.cookies" + suffix:
            event_id, _store, method, call_args = args
            try:
                result = services.cookie_store(method, call_args)
                replies.append(["execution.cookies" + suffix, event_id, None, result])
            except Exception as error:
                replies.append(["execution.cookies" + suffix, event_id, str(error), None])
        elif name in ("__host_error", "error"):
            outcome.errors.append(_error_json(args[0] if args else {}))
        elif name == "execution.result" + suffix:
            _apply_result(outcome, args[0], args[1] if len(args) > 1 else None)
            return True
        return False


def _error_json(error: Any) -> JSON:
    if isinstance(error, dict):
        return {
            "name": str(error.get("name") or "Error"),
            "message": str(error.get("message") or ""),
            "stack": error.get("stack"),
        }
    return {"name": "Error", "message": str(error), "stack": None}


def _apply_result(outcome: ScriptOutcome, error: Any, execution: JSON | None) -> None:
    if error:
        failure = _error_json(error)
        if failure not in outcome.errors:
            outcome.errors.append(failure)
    if not execution:
        return
    for scope in ("environment", "globals", "collectionVariables", "_variables"):
        values = (execution.get(scope) or {}).get("values")
        if isinstance(values, list):
            outcome.scopes[scope] = values
    if isinstance(execution.get("request"), dict):
        outcome.request = execution["request"]
    returned = execution.get("return") or {}
    if "nextRequest" in returned:
        outcome.has_next_request = True
        next_request = returned["nextRequest"]
        outcome.next_request = None if next_request is None else str(next_request)
    if returned.get("visualizer"):
        outcome.visualizer = returned["visualizer"]


_local = threading.local()


def context_for_this_thread(limits: ScriptLimits | None = None) -> SandboxContext:
    """The calling thread's sandbox context, created on first use.

    For tools and tests that run one collection's scripts on a thread. Runs
    take their context from ``runtime.sandbox.pool``: a context shared by the
    runs of a thread would let one run see another's scripts.
    """
    context: SandboxContext | None = getattr(_local, "context", None)
    if context is None:
        context = SandboxContext(limits)
        _local.context = context
    elif limits is not None:
        context.limits = limits
    return context
