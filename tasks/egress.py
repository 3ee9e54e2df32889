"""The egress policy of this process: its settings, and its network's section.

A runner's rules come from its settings (``PMRUNNER_EGRESS_*``); a
network's rules from the ``egress`` section of the networks file, which
travels with each run (in its ticket) like the routing rules, so a worker
applies the section of the network whose queue gave it the step.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from pmrunner.structured_input import read_yaml
from runtime.egress import EgressPolicy, configured_policy, network_sections
from runtime.egress_transport import egress_session
from runtime.options import RunOptions
from worker.settings import Settings

JSON = dict[str, Any]


def egress_policy(
    settings: Settings, network: str | None = None, networks: JSON | None = None
) -> EgressPolicy:
    """The policy for traffic that leaves from ``network``.

    Parameters:
        settings: the runner's rules, default and proxy.
        network: the network the traffic leaves from (None: the runner's rules only).
        networks: the networks file's content (a run ticket's ``networks``).

    Raises:
        ConfigurationError: a malformed rule, naming the setting or the network.
    """
    section = network_sections(networks).get(network or "") if network else None
    return _policy(
        settings.egress_allow,
        settings.egress_deny,
        settings.egress_default == "deny",
        settings.egress_proxy,
        network,
        json.dumps(section, sort_keys=True, default=str),
    )


@lru_cache(maxsize=64)
def _policy(
    allow: tuple[str, ...],
    deny: tuple[str, ...],
    default_deny: bool,
    proxy: str | None,
    network: str | None,
    section: str,
) -> EgressPolicy:
    sections = {network: json.loads(section)} if network and section != "null" else {}
    return configured_policy(
        allow=allow,
        deny=deny,
        default_deny=default_deny,
        proxy=proxy,
        networks={"egress": sections},
        network=network,
    )


def with_egress(
    options: RunOptions, settings: Settings, network: str | None, networks: JSON | None
) -> RunOptions:
    """``options`` under this process's policy for ``network``."""
    policy = egress_policy(settings, network, networks)
    return options if options.egress == policy else replace(options, egress=policy)


def egress_sections(path: Path | None) -> JSON:
    """The ``egress`` section of the networks file at ``path`` (checked), for a run's ticket.

    Raises:
        ConfigurationError: the file cannot be read, or the section is malformed.
    """
    if path is None:
        return {}
    data = read_yaml(path, unique_keys=False) or {}
    return network_sections(data if isinstance(data, dict) else {})


def process_policy(settings: Settings) -> EgressPolicy:
    """The policy of this process: its settings, and its own network's section if it has one.

    For local runs and webhooks; a distributed step uses its queue's network instead.
    """
    if settings.network is None:
        return egress_policy(settings)
    networks = {"egress": egress_sections(settings.networks_file)}
    return egress_policy(settings, settings.network, networks)


def webhook_session(settings: Settings) -> Any:
    """A session for webhooks: this process's policy, through its egress proxy if set."""
    return egress_session(process_policy(settings))
