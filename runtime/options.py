"""Run options: what ``newman run`` options and monitor settings control.

Small immutable value objects, in the manner of httpx's ``Timeout``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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
    """Limits for one script execution in the JavaScript sandbox."""

    max_memory_bytes: int = 256 * 1024 * 1024
    default_timeout_ms: int = 30_000  # when no script timeout is set, still bound it


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
