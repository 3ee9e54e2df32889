"""The egress policy: which hosts and addresses monitor traffic may reach.

A pure decision, without sockets: ``runtime.egress_transport`` asks it about
the name of every request's host and about every address a connection is
about to be made to (after DNS, so a name that resolves somewhere it should
not is refused where it connects, and DNS rebinding gains nothing).

Rules are CIDRs (``10.0.0.0/8``, ``fd00::/8``, a bare address) or host-name
patterns (``fnmatch`` style, case-insensitive: ``*.corp.internal``,
``api.example.com``). The decision, in order:

1. a name matched by a deny pattern is refused, unless an allow pattern
   matches it too;
2. an address matched by an allow CIDR is allowed;
3. an address matched by a deny CIDR (the defaults included) is refused;
4. with ``default_deny``, anything not allowed by a rule (its name or its
   address) is refused; otherwise it is allowed.

An allowed name does not exempt its addresses from the deny CIDRs: allowing
``api.corp`` does not let it resolve into the metadata range.

Cloud metadata and link-local addresses are denied by default
(``DEFAULT_DENY``); an allow CIDR can open a part of them deliberately.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pmrunner.errors import ConfigurationError, EgressBlockedError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_SOURCE = "default: cloud metadata and link-local"


def _unmapped(address: IPAddress) -> IPAddress:
    """``::ffff:169.254.169.254`` reaches 169.254.169.254: judge it as that."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _unmapped_network(network: IPNetwork) -> IPNetwork:
    mapped = network.network_address
    if isinstance(mapped, ipaddress.IPv6Address) and mapped.ipv4_mapped and network.prefixlen >= 96:
        return ipaddress.ip_network(f"{mapped.ipv4_mapped}/{network.prefixlen - 96}")
    return network


def _looks_like_address(text: str) -> bool:
    return ":" in text or text.replace(".", "").isdigit()


@dataclass(frozen=True)
class EgressRule:
    """One allow or deny rule: a CIDR or a host-name pattern, and where it was configured."""

    text: str
    source: str
    network: IPNetwork | None = None
    pattern: str | None = None

    @classmethod
    def parse(cls, entry: object, source: str) -> EgressRule:
        """A rule from its text (``10.0.0.0/8``, ``::1``, ``*.corp.internal``).

        Raises:
            ConfigurationError: an empty entry or a malformed CIDR, naming ``source``.
        """
        text = str(entry).strip().lower()
        if not text or not isinstance(entry, str | int):
            raise ConfigurationError(f"{source}: egress rule {entry!r} is not a CIDR or host")
        if "/" in text or _looks_like_address(text):
            try:
                network = ipaddress.ip_network(text, strict=False)
            except ValueError as error:
                raise ConfigurationError(f"{source}: egress rule {text!r}: {error}") from error
            return cls(text, source, network=_unmapped_network(network))
        return cls(text, source, pattern=text.rstrip("."))

    def matches_name(self, host: str) -> bool:
        """Whether this is a pattern rule that matches the (normalized) host name."""
        return self.pattern is not None and fnmatch.fnmatchcase(host, self.pattern)

    def matches_address(self, address: IPAddress) -> bool:
        """Whether this is a CIDR rule that contains the address."""
        network = self.network
        return network is not None and network.version == address.version and address in network

    def describe(self, verdict: str) -> str:
        """The rule as the refusal names it: ``deny 10.0.0.0/8 (PMRUNNER_EGRESS_DENY)``."""
        return f"{verdict} {self.text} ({self.source})"


def rules(entries: Iterable[object], source: str) -> tuple[EgressRule, ...]:
    """Parse a list of rule texts configured at ``source``."""
    return tuple(EgressRule.parse(entry, source) for entry in entries)


DEFAULT_DENY: tuple[EgressRule, ...] = rules(
    (
        "169.254.0.0/16",  # IPv4 link-local, AWS/GCP/Azure/OpenStack metadata (169.254.169.254)
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "100.100.100.200/32",  # Alibaba Cloud metadata
        "metadata.google.internal",
    ),
    DEFAULT_SOURCE,
)


@dataclass(frozen=True)
class Decision:
    """What the policy says about one name or address.

    ``rule`` names the rule that decided (empty when none did); ``explicit``
    is True when an allow rule matched.
    """

    allowed: bool
    rule: str = ""
    explicit: bool = False


@dataclass(frozen=True)
class EgressPolicy:
    """Allow and deny rules, and where monitor traffic leaves.

    Parameters:
        allow: rules that allow (an allow CIDR overrides a deny CIDR, an allow
            pattern a deny pattern).
        deny: rules that refuse; ``DEFAULT_DENY`` unless replaced.
        default_deny: refuse whatever no allow rule matches.
        proxy: an egress proxy URL that carries all monitor traffic (None:
            direct, or the ``HTTP(S)_PROXY`` of the environment).
    """

    allow: tuple[EgressRule, ...] = ()
    deny: tuple[EgressRule, ...] = DEFAULT_DENY
    default_deny: bool = False
    proxy: str | None = field(default=None, repr=False)

    def decide_name(self, host: str) -> Decision:
        """The decision on a host as written in a URL (a name or an IP literal)."""
        host = normalize_host(host)
        address = parse_address(host)
        if address is not None:
            return self.decide_address(address)
        return self._by_rules(lambda rule: rule.matches_name(host)) or Decision(True)

    def decide_address(self, address: IPAddress | str, name: Decision | None = None) -> Decision:
        """The decision on an address a connection is about to be made to.

        Parameters:
            address: the resolved address (IPv4-mapped IPv6 counts as IPv4).
            name: the decision on the host name it was resolved from, if any:
                an explicitly allowed name satisfies ``default_deny``.
        """
        if isinstance(address, str):
            parsed = parse_address(address)
            if parsed is None:
                raise ValueError(f"not an IP address: {address!r}")
            address = parsed
        address = _unmapped(address)
        by_rules = self._by_rules(lambda rule: rule.matches_address(address))
        if by_rules is not None:
            return by_rules
        if name is not None and name.explicit:
            return name
        if self.default_deny:
            return Decision(False, f"{address} is not in an allow rule (default deny)")
        return Decision(True)

    def _by_rules(self, matches: Callable[[EgressRule], bool]) -> Decision | None:
        """The first matching allow rule's decision, else the first deny rule's, else None."""
        allowed_by = next((rule for rule in self.allow if matches(rule)), None)
        if allowed_by is not None:
            return Decision(True, allowed_by.describe("allow"), explicit=True)
        denied_by = next((rule for rule in self.deny if matches(rule)), None)
        if denied_by is not None:
            return Decision(False, denied_by.describe("deny"))
        return None

    def check_name(self, host: str) -> Decision:
        """``decide_name``, raising ``EgressBlockedError`` on a refusal."""
        return _enforced(self.decide_name(host))

    def check_address(self, address: IPAddress | str, name: Decision | None = None) -> Decision:
        """``decide_address``, raising ``EgressBlockedError`` on a refusal."""
        return _enforced(self.decide_address(address, name))

    def with_rules(
        self, allow: Iterable[EgressRule] = (), deny: Iterable[EgressRule] = ()
    ) -> EgressPolicy:
        """This policy with more rules (added after its own)."""
        return replace(self, allow=(*self.allow, *allow), deny=(*self.deny, *deny))


def configured_policy(
    *,
    allow: Iterable[str] = (),
    deny: Iterable[str] = (),
    default_deny: bool = False,
    proxy: str | None = None,
    networks: Mapping[str, Any] | None = None,
    network: str | None = None,
) -> EgressPolicy:
    """The policy of a runner (its settings) in one network (the networks file).

    Parameters:
        allow / deny: the runner's rules (``PMRUNNER_EGRESS_ALLOW`` / ``_DENY``).
        default_deny: refuse what no allow rule matches (``PMRUNNER_EGRESS_DEFAULT=deny``).
        proxy: the egress proxy (``PMRUNNER_EGRESS_PROXY``).
        networks: the networks file's content; its ``egress`` section maps
            network names to ``{allow: [...], deny: [...]}``.
        network: the network the traffic leaves from; its section applies.

    Raises:
        ConfigurationError: a malformed rule or section, naming where it is.
    """
    policy = EgressPolicy(default_deny=default_deny, proxy=proxy or None).with_rules(
        rules(allow, "PMRUNNER_EGRESS_ALLOW"), rules(deny, "PMRUNNER_EGRESS_DENY")
    )
    if network is None:
        return policy
    section = network_sections(networks).get(network, {})
    source = f"network {network}"
    return policy.with_rules(
        rules(section.get("allow", ()), source), rules(section.get("deny", ()), source)
    )


def network_sections(networks: Mapping[str, Any] | None) -> dict[str, dict[str, list[Any]]]:
    """The ``egress`` section of a networks file, checked: network -> {allow, deny}.

    Raises:
        ConfigurationError: the section, a network's entry or a list has the wrong shape.
    """
    section = (networks or {}).get("egress") or {}
    if not isinstance(section, dict):
        raise ConfigurationError("networks file: 'egress' must map network names to rules")
    checked: dict[str, dict[str, list[Any]]] = {}
    for name, entry in section.items():
        where = f"networks file: egress of network {name!r}"
        if not isinstance(entry, dict) or set(entry) - {"allow", "deny"}:
            raise ConfigurationError(f"{where} must be a mapping with 'allow' and/or 'deny'")
        lists: dict[str, list[Any]] = {}
        for verdict in ("allow", "deny"):
            value = entry.get(verdict) or []
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, list):
                raise ConfigurationError(f"{where}: '{verdict}' must be a list")
            rules(value, f"network {name}")  # raises on a malformed rule
            lists[verdict] = value
        checked[str(name)] = lists
    return checked


def normalize_host(host: str) -> str:
    """A host as rules see it: lower case, no brackets, zone or trailing dot."""
    host = host.strip().strip("[]").lower().rstrip(".")
    return host.partition("%")[0]  # an IPv6 zone (fe80::1%eth0) names an interface


def parse_address(text: str) -> IPAddress | None:
    """The IP address ``text`` spells in its standard form, or None for a name."""
    try:
        return _unmapped(ipaddress.ip_address(normalize_host(text)))
    except ValueError:
        return None


def _enforced(decision: Decision) -> Decision:
    if not decision.allowed:
        raise EgressBlockedError(f"blocked by egress policy: {decision.rule}")
    return decision
