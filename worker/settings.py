"""pmrunner's settings: one typed object, built from ``PMRUNNER_*`` variables.

    settings = Settings.from_env()

Every field has a default that works on one machine; a cluster sets at least
``PMRUNNER_REDIS_URL`` on every host, and ``PMRUNNER_NETWORK`` on workers.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from pmrunner.errors import ConfigurationError
from pmrunner.structured_input import user_path

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_MAX_RESPONSE_BYTES = 50 * 1024 * 1024  # as runtime.options: worker imports no runtime
DEFAULT_SCRIPT_CONSOLE_CHARS = 1024 * 1024  # as runtime.options.ScriptLimits


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "pmrunner"


@dataclass(frozen=True)
class Settings:
    """pmrunner's settings.

    Parameters:
        redis_url: broker, result backend and run store (``PMRUNNER_REDIS_URL``).
        networks_file: YAML file mapping networks to CIDRs and host patterns.
        network: the network this worker sits in (labels its executions).
        default_network: the network for hosts no rule matches.
        run_deadline: seconds a run may take before the sweeper ends it.
        sweep_interval: seconds between rounds of upkeep (overdue runs, lost workers, webhooks).
        poll_interval: seconds between polls of the monitor source (Postman or files).
        max_staleness: seconds monitors keep running from the last good poll while
            the source fails; older data is not run.
        visibility_timeout: seconds before the broker re-delivers an unacked task;
            must stay above the longest run.
        retention_days: stored runs older than this are dropped.
        retention_runs: at most this many runs are kept per collection.
        webhooks: URLs every finished run report is posted to.
        data_dir: where the embedded Redis and local state live.
        key_prefix: prefix of every Redis key pmrunner writes.
        monitors_file: a ``monitors.yaml`` to run monitors from (local source).
        postman_api_key: the Postman API key (Postman source); never logged.
        postman_base_url: the Postman API's base URL.
        postman_monitors: uids of Postman monitors this runner runs.
        postman_workspace: run the monitors of this workspace (with the marker, if set).
        postman_marker: run monitors whose name contains this text.
        proxy: proxy for calls to the Postman API.
        secrets_file: local values for variables (vault secrets, overrides).
        runner_id: this runner's name in logs and metrics.
        backfill_slots: after downtime, run at most this many missed slots (0: none).
        metrics_port: serve Prometheus metrics on this port (0: off).
        metrics_host: the address the metrics server listens on (every
            interface by default, so Prometheus can scrape from another host).
        extra_ca_certs: extra trusted CA certificates (PEM) for monitor runs.
        api_key: the key clients of the HTTP API send (``x-api-key``); never logged.
        api_host: the address ``pmrunner api`` listens on.
        api_port: the port ``pmrunner api`` listens on.
        api_rate_limit: requests per minute the HTTP API accepts from one client
            (one API key, or one address); 0 for no limit.
        api_trusted_proxies: addresses or CIDRs of the proxies in front of the
            API whose ``X-Forwarded-For`` names the client; none by default,
            so the client is the address that connected.
        secret_key: seals every credential pmrunner keeps in Redis (a run's
            collection version and variable states, polled collections and
            environments, webhook URLs); every process of a cluster needs the
            same one. Never logged. Unset: read from ``secret_key_file``, else
            from ``<data_dir>/secret-key``, made on first use.
        secret_key_file: a file holding the secret key (a mounted secret).
        secret_key_previous: keys sealed with before the current one, still
            accepted while a cluster rotates its key.
        egress_allow: CIDRs and host patterns monitor traffic may reach even
            where a deny rule (a default one included) would refuse it.
        egress_deny: CIDRs and host patterns monitor traffic must not reach,
            added to the default denials (cloud metadata, link-local).
        egress_default: ``allow`` (default) or ``deny``: what happens to
            traffic no rule matches.
        max_response_size: the largest response body a monitor's request reads,
            in bytes, on the wire and decoded (Postman's 50 MB; 0: no limit).
        egress_proxy: a proxy URL that carries all monitor traffic (requests,
            ``pm.sendRequest``, webhooks).
        worker_lapse: seconds without a heartbeat after which a worker counts as
            lost and its steps are resolved.
        redis_retry_seconds: how long every pmrunner process keeps reconnecting
            to an unreachable Redis before an operation fails.
        resend_unsafe: send a POST, PUT, PATCH or DELETE again when the worker
            that sent it was lost (off: such a step is reported "outcome unknown").
        script_contexts: most script contexts (V8 isolates, ~20 MiB each) a
            worker keeps at once; 0: twice the cores, at least 4.
        script_contexts_warm: script contexts a worker boots before it consumes
            and keeps booted ahead of new runs.
        script_context_idle: seconds after which a run's idle script context
            is closed.
        script_console_chars: characters of console output one script may
            print; the rest is dropped, with one line saying so (0: no cap).
    """

    redis_url: str = DEFAULT_REDIS_URL
    networks_file: Path | None = None
    network: str | None = None
    default_network: str = "default"
    run_deadline: float = 600.0
    sweep_interval: float = 1.0
    poll_interval: float = 30.0
    max_staleness: float = 86400.0
    visibility_timeout: float = 4 * 3600.0
    retention_days: float = 30.0
    retention_runs: int = 1000
    webhooks: tuple[str, ...] = ()
    data_dir: Path = field(default_factory=_default_data_dir)
    key_prefix: str = "pmrunner:"
    monitors_file: Path | None = None
    postman_api_key: str | None = field(default=None, repr=False)
    postman_base_url: str = "https://api.getpostman.com"
    postman_monitors: tuple[str, ...] = ()
    postman_workspace: str | None = None
    postman_marker: str | None = None
    proxy: str | None = field(default=None, repr=False)
    secrets_file: Path | None = None
    runner_id: str | None = None
    backfill_slots: int = 0
    metrics_port: int = 0
    metrics_host: str = "0.0.0.0"
    extra_ca_certs: Path | None = None
    api_key: str | None = field(default=None, repr=False)
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_rate_limit: int = 300
    api_trusted_proxies: tuple[str, ...] = ()
    secret_key: str | None = field(default=None, repr=False)
    secret_key_file: Path | None = None
    secret_key_previous: tuple[str, ...] = field(default=(), repr=False)
    egress_allow: tuple[str, ...] = ()
    egress_deny: tuple[str, ...] = ()
    egress_default: str = "allow"
    egress_proxy: str | None = field(default=None, repr=False)
    worker_lapse: float = 15.0
    redis_retry_seconds: float = 60.0
    resend_unsafe: bool = False
    max_response_size: int = DEFAULT_MAX_RESPONSE_BYTES
    script_contexts: int = 0
    script_contexts_warm: int = 2
    script_context_idle: float = 60.0
    script_console_chars: int = DEFAULT_SCRIPT_CONSOLE_CHARS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``PMRUNNER_<FIELD>`` variables (upper case).

        Raises ConfigurationError naming the variable when a value does not parse.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for spec in fields(cls):
            name = "PMRUNNER_" + spec.name.upper()
            if name not in environ or environ[name] == "":
                continue
            values[spec.name] = _parse(name, environ[name], str(spec.type))
        settings = cls(**values)  # type: ignore[arg-type]
        if settings.egress_default not in ("allow", "deny"):
            raise ConfigurationError(
                f"PMRUNNER_EGRESS_DEFAULT={settings.egress_default!r}: expected allow or deny"
            )
        return settings

    @classmethod
    def from_dsn(cls, redis_url: str, **overrides: Any) -> Settings:
        """Settings for one Redis URL, everything else from the environment."""
        return dataclasses.replace(cls.from_env(), redis_url=redis_url, **overrides)

    def to_env(self) -> dict[str, str]:
        """The ``PMRUNNER_*`` variables that give another process these settings.

        The inverse of ``from_env``: for starting workers, beat or Flower
        with the same Redis, prefix and networks as this process.
        """
        env: dict[str, str] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is None:
                continue
            text = ",".join(value) if isinstance(value, tuple) else str(value)
            env["PMRUNNER_" + spec.name.upper()] = text
        return env

    def queue_for(self, network: str) -> str:
        """The Celery queue of a network: request steps only."""
        return f"net.{network}"

    @property
    def control_queue(self) -> str:
        """The queue of run bookkeeping (finalize, notices) that every worker consumes.

        Named after the key prefix, so each cluster sharing a Redis has its own.
        """
        return f"{self.key_prefix}control"


def _parse(name: str, raw: str, annotation: str) -> object:
    try:
        if "Path" in annotation:
            return user_path(raw)
        if annotation == "float":
            return float(raw)
        if annotation == "int":
            return int(raw)
        if annotation == "bool":
            return _flag(name, raw)
        if "tuple" in annotation:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError as error:
        raise ConfigurationError(f"{name}={raw!r} is not a valid {annotation}") from error
    return raw


def _flag(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name}={raw!r} is not a valid bool (true or false)")
