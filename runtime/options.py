"""Run options: what ``newman run`` options and monitor settings control.

Small immutable value objects, in the manner of httpx's ``Timeout``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.egress import EgressPolicy

DEFAULT_MAX_RESPONSE_BYTES = 50 * 1024 * 1024  # Postman's default maximum response size


@dataclass(frozen=True)
class Timeouts:
    """Time limits in milliseconds; 0 means no limit (newman's convention).

    request: one HTTP exchange; script: one script execution; run: the whole run.
    """

    request: int = 0
    script: int = 0
    run: int = 0

    @property
    def request_seconds(self) -> float | None:
        return self.request / 1000 if self.request > 0 else None


@dataclass(frozen=True)
class TLSOptions:
    """TLS settings: verification, extra CA certificates, a client certificate."""

    verify: bool = True
    extra_ca_certs: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    client_passphrase: str | None = None


@dataclass(frozen=True)
class ScriptLimits:
    """Limits for one script execution in the JavaScript sandbox.

    max_memory_bytes: the V8 heap a run's scripts may use.
    default_timeout_ms: the time limit of a script when the run sets none.
    max_console_chars: what one script may print; the rest is dropped (0: no cap).
    """

    max_memory_bytes: int = 256 * 1024 * 1024
    default_timeout_ms: int = 30_000  # when no script timeout is set, still bound it
    max_console_chars: int = 1024 * 1024


@dataclass(frozen=True)
class RunOptions:
    """Everything that shapes a run, apart from the collection and its variables.

    Parameters:
        iterations: number of iterations (None: one, or one per data row).
        folders: run only these folders or requests (by name or id).
        delay_request_ms: pause between requests.
        bail: stop the run at the first failing request or assertion.
        follow_redirects: newman's ``--ignore-redirects`` sets this to False.
        timeouts: request, script and run limits.
        tls: certificate settings.
        working_dir: where relative file paths in bodies are resolved.
        max_body_bytes: how much of each response body a report keeps.
        max_response_bytes: the largest response body read, on the wire and
            decoded (Postman's default, 50 MB; 0: no limit); a larger one
            fails its request.
        egress: the egress policy of the process that sends the requests; it
            does not travel with a run (each worker applies its own).
    """

    iterations: int | None = None
    folders: tuple[str, ...] = ()
    delay_request_ms: int = 0
    bail: bool = False
    follow_redirects: bool = True
    timeouts: Timeouts = field(default_factory=Timeouts)
    tls: TLSOptions = field(default_factory=TLSOptions)
    script_limits: ScriptLimits = field(default_factory=ScriptLimits)
    working_dir: Path = field(default_factory=Path.cwd)
    max_body_bytes: int = 64 * 1024
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    egress: EgressPolicy = field(default_factory=EgressPolicy)


def options_to_dict(options: RunOptions) -> dict[str, Any]:
    """JSON-safe form of run options (paths as strings), for task messages and tickets."""
    return {
        "iterations": options.iterations,
        "folders": list(options.folders),
        "delay_request_ms": options.delay_request_ms,
        "bail": options.bail,
        "follow_redirects": options.follow_redirects,
        "timeouts": {
            "request": options.timeouts.request,
            "script": options.timeouts.script,
            "run": options.timeouts.run,
        },
        "tls": {
            "verify": options.tls.verify,
            "extra_ca_certs": _path_text(options.tls.extra_ca_certs),
            "client_cert": _path_text(options.tls.client_cert),
            "client_key": _path_text(options.tls.client_key),
            "client_passphrase": options.tls.client_passphrase,
        },
        "script_limits": {
            "max_memory_bytes": options.script_limits.max_memory_bytes,
            "default_timeout_ms": options.script_limits.default_timeout_ms,
            "max_console_chars": options.script_limits.max_console_chars,
        },
        "working_dir": str(options.working_dir),
        "max_body_bytes": options.max_body_bytes,
        "max_response_bytes": options.max_response_bytes,
    }


def options_from_dict(data: dict[str, Any]) -> RunOptions:
    """The inverse of ``options_to_dict``."""
    tls = dict(data.get("tls") or {})
    return RunOptions(
        iterations=data.get("iterations"),
        folders=tuple(data.get("folders") or ()),
        delay_request_ms=int(data.get("delay_request_ms") or 0),
        bail=bool(data.get("bail")),
        follow_redirects=bool(data.get("follow_redirects", True)),
        timeouts=Timeouts(**dict(data.get("timeouts") or {})),
        tls=TLSOptions(
            verify=bool(tls.get("verify", True)),
            extra_ca_certs=_path(tls.get("extra_ca_certs")),
            client_cert=_path(tls.get("client_cert")),
            client_key=_path(tls.get("client_key")),
            client_passphrase=tls.get("client_passphrase"),
        ),
        script_limits=ScriptLimits(**dict(data.get("script_limits") or {})),
        working_dir=Path(str(data.get("working_dir") or Path.cwd())),
        max_body_bytes=int(data.get("max_body_bytes") or 64 * 1024),
        max_response_bytes=int(data.get("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES)),
    )


def _path_text(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def _path(text: object) -> Path | None:
    return Path(str(text)) if text else None
