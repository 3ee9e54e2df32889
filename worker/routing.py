"""Routing requests to networks: which subnet's workers can reach a host.

A networks file maps network names to CIDRs and host patterns::

    default: default          # network for hosts no rule matches
    networks:
      a: ["198.18.1.0/24", "*.corp-a.internal"]
      b: ["10.20.0.0/16", "api.b.internal"]

Each network has a Celery queue ``net.<name>``; workers in that subnet run
``celery -A worker worker -Q net.<name>``. Rules are tried in file order; an
IP literal matches CIDRs, a host name matches patterns (``fnmatch`` style,
case-insensitive). Names are not resolved through DNS: the worker that can
reach a host is the one that can resolve it, and the dispatcher may not.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmrunner.errors import ConfigurationError
from pmrunner.structured_input import read_yaml

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class NetworkRule:
    """One network and what it reaches."""

    name: str
    cidrs: tuple[IPNetwork, ...] = ()
    patterns: tuple[str, ...] = ()

    def matches(self, host: str) -> bool:
        host = host.strip("[]").lower()
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return any(fnmatch.fnmatchcase(host, pattern) for pattern in self.patterns)
        return any(address in cidr for cidr in self.cidrs)


@dataclass(frozen=True)
class NetworkMap:
    """Rules in order, and the network that takes the rest."""

    rules: tuple[NetworkRule, ...] = ()
    default: str = "default"
    names: frozenset[str] = field(default=frozenset())

    def network_for(self, host: str, pinned: str | None = None) -> str:
        """The network whose workers run a request to ``host``.

        A pinned network (monitor, folder or request) wins over the rules.
        """
        if pinned:
            return pinned
        for rule in self.rules:
            if rule.matches(host):
                return rule.name
        return self.default

    @classmethod
    def load(cls, path: Path | None, default: str = "default") -> NetworkMap:
        """Read a networks file; no file means every request goes to ``default``."""
        if path is None:
            return cls(default=default, names=frozenset({default}))
        data = read_yaml(path, unique_keys=False) or {}
        return cls.from_dict(data, source=str(path), default=default)

    @classmethod
    def from_dict(
        cls, data: Any, *, source: str = "networks", default: str = "default"
    ) -> NetworkMap:
        if not isinstance(data, dict):
            raise ConfigurationError(f"{source}: expected a mapping with 'networks'")
        default = str(data.get("default") or default)
        networks = data.get("networks") or {}
        if not isinstance(networks, dict):
            raise ConfigurationError(f"{source}: 'networks' must map names to lists of rules")
        rules = tuple(_rule(source, str(name), entries) for name, entries in networks.items())
        return cls(rules, default, frozenset({default, *(rule.name for rule in rules)}))


def _rule(source: str, name: str, entries: Any) -> NetworkRule:
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigurationError(f"{source}: network name {name!r} must be letters, digits, - or _")
    if isinstance(entries, str):
        entries = [entries]
    if not isinstance(entries, list):
        raise ConfigurationError(
            f"{source}: network {name!r} needs a list of CIDRs or host patterns"
        )
    cidrs: list[IPNetwork] = []
    patterns: list[str] = []
    for entry in entries:
        text = str(entry).strip()
        if not text:
            continue
        if "/" in text or text.replace(".", "").isdigit() or ":" in text:
            try:
                cidrs.append(ipaddress.ip_network(text, strict=False))
            except ValueError as error:
                raise ConfigurationError(f"{source}: network {name!r}: {error}") from error
        else:
            patterns.append(text.lower())
    return NetworkRule(name, tuple(cidrs), tuple(patterns))
