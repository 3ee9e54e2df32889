"""The egress policy's decisions, without sockets (no address here is ever connected to)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pmrunner.errors import ConfigurationError, EgressBlockedError
from runtime.egress import DEFAULT_SOURCE, EgressPolicy, configured_policy
from tasks.egress import egress_policy, egress_sections, process_policy
from worker.settings import Settings

DEFAULTS = EgressPolicy()


@pytest.mark.parametrize(
    ("address", "rule"),
    [
        ("169.254.169.254", "169.254.0.0/16"),
        ("169.254.170.2", "169.254.0.0/16"),  # ECS task metadata
        ("::ffff:169.254.169.254", "169.254.0.0/16"),  # IPv4-mapped: the same host
        ("fe80::1", "fe80::/10"),
        ("fd00:ec2::254", "fd00:ec2::254/128"),
        ("100.100.100.200", "100.100.100.200/32"),
    ],
)
def test_metadata_and_link_local_addresses_are_denied_by_default(address: str, rule: str) -> None:
    decision = DEFAULTS.decide_address(address)
    assert not decision.allowed
    assert decision.rule == f"deny {rule} ({DEFAULT_SOURCE})"


@pytest.mark.parametrize(
    "host",
    [
        "metadata.google.internal",
        "METADATA.Google.Internal.",
        "169.254.169.254",
        "[fe80::1%25eth0]",
        "[::ffff:a9fe:a9fe]",
    ],
)
def test_metadata_hosts_are_denied_by_name_before_any_lookup(host: str) -> None:
    assert not DEFAULTS.decide_name(host).allowed
    with pytest.raises(EgressBlockedError, match=r"^blocked by egress policy: deny "):
        DEFAULTS.check_name(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "10.1.2.3", "api.corp.internal", "localhost"])
def test_everything_else_is_allowed_by_default(host: str) -> None:
    assert DEFAULTS.decide_name(host).allowed


def test_deny_lists_of_cidrs_and_patterns() -> None:
    policy = configured_policy(deny=["127.0.0.2", "10.0.0.0/8", "*.secret.test"])
    assert policy.decide_address("127.0.0.2").rule == "deny 127.0.0.2 (PMRUNNER_EGRESS_DENY)"
    assert not policy.decide_address("10.200.0.1").allowed
    assert policy.decide_address("127.0.0.1").allowed
    assert not policy.decide_name("db.Secret.test").allowed
    assert policy.decide_name("secret.test").allowed  # *.x matches below x, not x itself
    assert not policy.decide_address("169.254.169.254").allowed  # the defaults stay


def test_allow_rules_open_holes_in_deny_rules_but_a_name_does_not_open_its_address() -> None:
    policy = configured_policy(
        allow=["169.254.10.0/24", "api.secret.test"], deny=["*.secret.test", "127.0.0.2"]
    )
    assert policy.decide_address("169.254.10.9").rule == (
        "allow 169.254.10.0/24 (PMRUNNER_EGRESS_ALLOW)"
    )
    assert not policy.decide_address("169.254.169.254").allowed
    name = policy.decide_name("api.secret.test")
    assert name.allowed and name.explicit
    assert not policy.decide_name("db.secret.test").allowed
    # An allowed name resolving into a denied range is still refused (rebinding).
    assert not policy.decide_address("127.0.0.2", name).allowed


def test_default_deny_allows_only_what_a_rule_allows() -> None:
    policy = configured_policy(allow=["127.0.0.1/32", "*.corp.test"], default_deny=True)
    assert policy.decide_address("127.0.0.1").allowed
    refused = policy.decide_address("127.0.0.3")
    assert not refused.allowed and "default deny" in refused.rule
    assert policy.decide_address("127.0.0.3", policy.decide_name("api.corp.test")).allowed
    assert not policy.decide_address("127.0.0.3", policy.decide_name("other.test")).allowed


def test_network_sections_add_to_the_runner_rules() -> None:
    networks = {"egress": {"a": {"deny": ["127.0.0.3"]}, "b": {"allow": ["127.0.0.2"]}}}
    settings = Settings(egress_deny=("127.0.0.2",))
    in_a = egress_policy(settings, "a", networks)
    assert in_a.decide_address("127.0.0.3").rule == "deny 127.0.0.3 (network a)"
    assert not in_a.decide_address("127.0.0.2").allowed
    in_b = egress_policy(settings, "b", networks)
    assert in_b.decide_address("127.0.0.2").allowed and in_b.decide_address("127.0.0.3").allowed
    assert egress_policy(settings, "c", networks) == egress_policy(settings)


def test_settings_read_egress_variables() -> None:
    settings = Settings.from_env(
        {
            "PMRUNNER_EGRESS_ALLOW": "127.0.0.5, *.ok.test",
            "PMRUNNER_EGRESS_DENY": "127.0.0.0/8",
            "PMRUNNER_EGRESS_DEFAULT": "deny",
            "PMRUNNER_EGRESS_PROXY": "http://127.0.0.1:3128",
        }
    )
    policy = egress_policy(settings)
    assert policy.default_deny and policy.proxy == "http://127.0.0.1:3128"
    assert policy.decide_address("127.0.0.5").allowed
    assert not policy.decide_address("127.0.0.6").allowed
    with pytest.raises(ConfigurationError, match="PMRUNNER_EGRESS_DEFAULT"):
        Settings.from_env({"PMRUNNER_EGRESS_DEFAULT": "maybe"})
    with pytest.raises(ConfigurationError, match=r"_EGRESS_DENY: egress rule '10\.0\.0\.0/33'"):
        egress_policy(Settings(egress_deny=("10.0.0.0/33",)))


def test_the_networks_file_section_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "networks.yaml"
    path.write_text(
        "networks:\n  a: ['127.0.0.0/8']\negress:\n  a:\n    deny: ['127.0.0.4']\n",
        encoding="utf-8",
    )
    assert egress_sections(path) == {"a": {"allow": [], "deny": ["127.0.0.4"]}}
    policy = process_policy(Settings(network="a", networks_file=path))
    assert not policy.decide_address("127.0.0.4").allowed
    path.write_text("egress:\n  a: {block: ['127.0.0.4']}\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="egress of network 'a'"):
        egress_sections(path)
    path.write_text("egress:\n  a: {deny: ['300.1.1.1/8']}\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="network a: egress rule"):
        egress_sections(path)
