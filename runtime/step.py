"""One request of a run, start to finish: the unit a Celery task executes.

``run_item`` takes an item and the run's state (variables, iteration data),
runs the pre-request scripts, builds and sends the request with its auth,
runs the test scripts, and returns the ``Execution`` record plus where the
run goes next. The state it mutates is plain JSON, so a distributed run can
carry it from one worker to the next.

It never raises for what happens inside the request: script errors, request
errors, timeouts and unsupported auth all end up in the execution's errors.
"""

from __future__ import annotations

import base64
import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

from pmrunner.errors import PmrunnerError, SandboxError
from runtime.auth import signer_for
from runtime.exchange import HttpResponse, OutgoingRequest
from runtime.http_client import HttpClient
from runtime.masking import credential_values, mask, mask_headers
from runtime.model import Collection, Item, Script
from runtime.options import RunOptions
from runtime.request_builder import build_request
from runtime.results import Assertion, Execution, RequestRecord, ResponseRecord, ScriptError
from runtime.sandbox.cookies import ScriptCookieStore
from runtime.sandbox.engine import ScriptOutcome
from runtime.sandbox.pool import RunScripts
from runtime.state import RunState
from runtime.variables import VariableResolver

JSON = dict[str, Any]


@dataclass
class StepResult:
    """An execution and the flow directive its scripts left.

    has_next_request: ``setNextRequest`` was called; next_request is its
    target (None ends the iteration).
    """

    execution: Execution
    has_next_request: bool = False
    next_request: str | None = None


@dataclass
class Step:
    """The run-wide services a step needs: one per run (or per worker thread)."""

    collection: Collection
    options: RunOptions
    client: HttpClient
    sandbox: RunScripts  # the run's own script context

    def run_item(
        self, item: Item, state: RunState, execution: Execution, *, position: int
    ) -> StepResult:
        """Run one item with ``state``, which it updates in place, filling ``execution``.

        Parameters:
            item: the request item to run.
            state: variables, data row and iteration; scripts' changes land here.
            execution: the record to fill (created by the caller, so listeners
                can announce it before it runs).
            position: the item's index in the run's sequence, for ``pm.info``.
        """
        prepared = self.prepare(item, state, execution, position=position)
        if prepared.skipped:
            return prepared.result(execution)
        return self.complete(prepared, item, state, execution)

    def prepare(
        self, item: Item, state: RunState, execution: Execution, *, position: int
    ) -> Prepared:
        """Run the item's pre-request scripts: the first half of ``run_item``.

        The returned ``Prepared`` holds the request as the scripts left it, so
        a distributed run can choose the request's network now, and finish
        the step (``complete``) on a worker of that network.
        """
        prepared = Prepared(
            request=dict(item.request),
            cursor={
                "iteration": state.iteration,
                "cycles": state.iteration_count,
                "position": position,
                "ref": str(uuid.uuid4()),
            },
        )
        services = _Services(self, item)
        for script in item.script_chain("prerequest"):
            outcome = self._script(
                script, item, state, execution, prepared.cursor, services, prepared.request
            )
            if outcome is not None:
                prepared.absorb(outcome)
                if outcome.request is not None:
                    prepared.request = _keep_unscripted_fields(item.request, outcome.request)
                if outcome.skip_request:
                    execution.skipped = prepared.skipped = True
                    break
        return prepared

    def complete(
        self, prepared: Prepared, item: Item, state: RunState, execution: Execution
    ) -> StepResult:
        """Send the prepared request and run the test scripts: the second half of ``run_item``."""
        services = _Services(self, item)
        sent, response = self._exchange(item, prepared.request, state, execution)
        test_request = (
            _request_json(sent, prepared.request, state.resolver()) if sent else prepared.request
        )
        response_json = _response_json(response) if response else None
        for script in item.script_chain("test"):
            outcome = self._script(
                script,
                item,
                state,
                execution,
                prepared.cursor,
                services,
                test_request,
                response_json,
            )
            if outcome is not None:
                prepared.absorb(outcome)
        return prepared.result(execution)

    # -- scripts -----------------------------------------------------------

    def _script(
        self,
        script: Script,
        item: Item,
        state: RunState,
        execution: Execution,
        cursor: JSON,
        services: _Services,
        request_json: JSON,
        response_json: JSON | None = None,
    ) -> ScriptOutcome | None:
        context: JSON = {
            **state.sandbox_scopes(),
            "data": state.data,
            "request": request_json,
            "cookies": _cookies_for(self.client, request_json),
        }
        if response_json is not None:
            context["response"] = response_json
        legacy = {
            "_itemId": item.id,
            "_itemName": item.name,
            "_itemPath": [*item.path, item.name],
            "_eventItemName": _owner_name(item, script.owner_id),
        }
        kind = f"{script.listen}-script" if script.listen == "test" else "prerequest-script"
        if script.listen == "test":
            execution.test_scripts += 1
        else:
            execution.prerequest_scripts += 1
        try:
            outcome = self.sandbox.execute(
                listen=script.listen,
                source=script.source,
                context=context,
                services=services,
                timeout_ms=self.options.timeouts.script,
                cursor=cursor,
                legacy=legacy,
            )
        except SandboxError as error:
            execution.errors.append(
                ScriptError(kind, type(error).__name__, str(error), script.owner_id)
            )
            return None
        state.absorb(outcome)
        secrets = state.resolver().secret_values()
        execution.assertions.extend(_assertion(a, secrets) for a in outcome.assertions)
        execution.errors.extend(
            ScriptError(kind, e["name"], mask(e["message"], secrets), script.owner_id)
            for e in outcome.errors
        )
        execution.console.extend((level, mask(text, secrets)) for level, text in outcome.console)
        return outcome

    # -- the HTTP exchange ---------------------------------------------------

    def _exchange(
        self, item: Item, request_json: JSON, state: RunState, execution: Execution
    ) -> tuple[OutgoingRequest | None, HttpResponse | None]:
        resolver = state.resolver()
        behavior = item.effective_behavior()
        outgoing: OutgoingRequest | None = None
        try:
            outgoing = build_request(
                request_json,
                resolver.resolve,
                behavior=behavior,
                working_dir=self.options.working_dir,
            )
            auth = _auth_for(item, request_json)
            signer = signer_for(auth, resolver.resolve)
            response = self.client.send(outgoing, behavior=behavior, signer=signer)
        except PmrunnerError as error:
            secrets = _secrets_of(resolver, outgoing)
            message = mask(str(error), secrets)
            execution.errors.append(ScriptError("request", _error_name(error), message))
            if outgoing is not None:
                execution.request = _request_record(outgoing, secrets)
            return outgoing, None
        secrets = _secrets_of(resolver, outgoing)
        execution.request = _request_record(outgoing, secrets)
        execution.response = _response_record(response, secrets, self.options.max_body_bytes)
        return outgoing, response


@dataclass
class Prepared:
    """A step after its pre-request scripts (JSON-safe, to finish it on another worker).

    request: the request as the scripts left it; cursor: the sandbox's
    ``pm.info`` cursor; has_next / next_request: the last ``setNextRequest``;
    skipped: a script called ``pm.execution.skipRequest()``.
    """

    request: JSON
    cursor: JSON
    has_next: bool = False
    next_request: str | None = None
    skipped: bool = False

    def absorb(self, outcome: ScriptOutcome) -> None:
        """Keep a script's setNextRequest (the last one wins)."""
        if outcome.has_next_request:
            self.has_next, self.next_request = True, outcome.next_request

    def result(self, execution: Execution) -> StepResult:
        return StepResult(execution, self.has_next, self.next_request)

    def to_dict(self) -> JSON:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: JSON) -> Prepared:
        return cls(**data)


class _Services:
    """What scripts of one step may ask: pm.sendRequest and the cookie jar.

    ``pm.sendRequest`` goes through the run's client (its cookie jar and
    trusted CAs) and follows the item's ``strictSSL``, as Postman does.
    """

    def __init__(self, step: Step, item: Item) -> None:
        self.step = step
        self.cookies = ScriptCookieStore(step.client.jar)
        strict = item.effective_behavior().get("strictSSL")
        self.behavior = {} if strict is None else {"strictSSL": strict}

    def send_request(
        self, request: JSON, *, timeout: float | None = None
    ) -> tuple[JSON | None, JSON | None]:
        try:
            outgoing = build_request(
                request, lambda text: text, working_dir=self.step.options.working_dir
            )
            with _request_timeout_within(self.step.client, timeout):
                response = self.step.client.send(outgoing, behavior=self.behavior)
        except PmrunnerError as error:
            return {"name": _error_name(error), "message": str(error)}, None
        return None, _response_json(response)

    def cookie_store(self, method: str, args: list[Any]) -> Any:
        return self.cookies.call(method, args)


def _secrets_of(resolver: VariableResolver, outgoing: OutgoingRequest | None) -> set[str]:
    """What a request's record must mask: secret variables, auth and credential headers."""
    if outgoing is None:
        return resolver.secret_values()
    return resolver.secret_values() | outgoing.secrets | credential_values(outgoing.headers)


@contextlib.contextmanager
def _request_timeout_within(client: HttpClient, seconds: float | None) -> Iterator[None]:
    """Bound the client's request timeout by ``seconds`` (what is left of a script's time).

    A ``pm.sendRequest`` counts in the time of the script that started it; the
    run's own request timeout still applies when it is shorter.
    """
    options = client._options
    if seconds is None:
        yield
        return
    bound = max(int(seconds * 1000), 1)
    if 0 < options.timeouts.request <= bound:
        yield
        return
    client._options = replace(options, timeouts=replace(options.timeouts, request=bound))
    try:
        yield
    finally:
        client._options = options


def _auth_for(item: Item, request_json: JSON) -> JSON | None:
    """The request's own auth (scripts may have changed it), else the inherited one."""
    auth = request_json.get("auth")
    if isinstance(auth, dict) and auth.get("type") not in (None, "inherit"):
        return None if auth["type"] == "noauth" else auth
    return item.inherited_auth()


def _error_name(error: Exception) -> str:
    return "Error" if isinstance(error, PmrunnerError) else type(error).__name__


def _owner_name(item: Item, owner_id: str) -> str:
    for node in item.lineage:
        if node.id == owner_id:
            return node.name
    return item.name


def _keep_unscripted_fields(original: JSON, scripted: JSON) -> JSON:
    """The request after a script, keeping fields the sandbox does not carry."""
    merged = dict(original)
    merged.update(scripted)
    if "auth" in original and "auth" not in scripted:
        merged["auth"] = original["auth"]
    return merged


def _cookies_for(client: HttpClient, request_json: JSON) -> list[JSON]:
    url = request_json.get("url")
    raw = url.get("raw") if isinstance(url, dict) else url
    if not isinstance(raw, str) or "{{" in raw or not raw.startswith(("http://", "https://")):
        return []
    return [
        {"name": c.get("name") or c.get("key"), "key": c.get("name") or c.get("key"), **c}
        for c in client.cookies_for(raw)
    ]


def _assertion(raw: JSON, secrets: set[str]) -> Assertion:
    error = raw.get("error") or None
    return Assertion(
        name=str(raw.get("name", "")),
        passed=bool(raw.get("passed")),
        skipped=bool(raw.get("skipped")),
        error=mask(str(error.get("message", "")), secrets) if error else None,
        error_name=str(error.get("name", "AssertionError")) if error else None,
        stack=mask(str(error.get("stack") or ""), secrets) if error else None,
    )


def _body_text(body: bytes | None) -> str:
    if not body:
        return ""
    return body.decode("utf-8", errors="replace")


# Body modes whose fields scripts read (the legacy ``request.data`` gives form fields
# by key, repeated keys as an array): test scripts see these as defined, resolved.
_STRUCTURED_BODIES = ("urlencoded", "formdata", "graphql")


def _request_json(request: OutgoingRequest, definition: JSON, resolver: Any) -> JSON:
    """The request as sent, in postman-collection's JSON, for test scripts.

    Parameters:
        request: what went on the wire: its URL, method and headers.
        definition: the request as defined (after pre-request scripts): its
            structured body and its ``description`` (which v2.0 collections
            keep inside the request) are what Postman shows test scripts.
        resolver: substitutes variables in the structured body.
    """
    data: JSON = {
        "url": request.url,
        "method": request.method,
        "header": [{"key": k, "value": v} for k, v in request.headers],
    }
    body = definition.get("body")
    if isinstance(body, dict) and body.get("mode") in _STRUCTURED_BODIES:
        data["body"] = resolver.resolve_deep(body)
    elif request.body:
        data["body"] = {"mode": "raw", "raw": _body_text(request.body)}
    if definition.get("description") is not None:
        data["description"] = definition["description"]
    return data


def _response_json(response: HttpResponse) -> JSON:
    """A response in postman-collection's JSON, for test scripts and pm.sendRequest."""
    data: JSON = {
        "code": response.code,
        "status": response.reason,
        "header": [{"key": k, "value": v} for k, v in response.headers],
        "responseTime": round(response.response_time_ms),
        "responseSize": len(response.body),
    }
    body = response.body
    if _is_utf8(body):
        data["body"] = body if len(body) >= _LARGE_TEXT_BYTES else body.decode("utf-8")
    else:
        # postman-collection's Response decodes this form into a Buffer: 1.33
        # characters a byte on the way, where ``{"type": "Buffer"}`` takes an
        # array element a byte.
        encoded = base64.b64encode(body)
        data["stream"] = {
            "type": "Base64",
            "data": encoded if len(encoded) >= _LARGE_TEXT_BYTES else encoded.decode("ascii"),
        }
    return data


# Texts from this size on go to the sandbox as UTF-8 bytes, which it hands to
# V8 as strings of their own rather than inside the context's JSON.
_LARGE_TEXT_BYTES = 64 * 1024


def _is_utf8(body: bytes) -> bool:
    if body.isascii():  # no copy
        return True
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _request_record(request: OutgoingRequest, secrets: set[str]) -> RequestRecord:
    body = _body_text(request.body)
    return RequestRecord(
        method=request.method,
        url=mask(request.url, secrets),
        headers=mask_headers(request.headers, secrets),
        body_mode=request.body_mode,
        body=mask(body, secrets),
        body_size=len(request.body or b""),
    )


def _response_record(response: HttpResponse, secrets: set[str], cap: int) -> ResponseRecord:
    body = response.body[:cap] if cap > 0 else response.body
    return ResponseRecord(
        code=response.code,
        status=response.reason,
        headers=mask_headers(response.headers, secrets),
        body=mask(_body_text(body), secrets),
        body_truncated=cap > 0 and len(response.body) > cap,
        size=len(response.body),
        response_time_ms=response.response_time_ms,
    )
