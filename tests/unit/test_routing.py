"""Routing requests to networks, and settings from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from pmrunner.errors import ConfigurationError
from worker.routing import NetworkMap
from worker.settings import Settings


def test_cidrs_patterns_default_and_pins(tmp_path: Path) -> None:
    path = tmp_path / "networks.yaml"
    path.write_text(
        "default: edge\n"
        "networks:\n"
        "  a: ['198.18.1.0/24', '*.corp-a.internal']\n"
        "  b: ['10.20.0.0/16', 'api.b.internal', 'fd00::/8']\n"
    )
    networks = NetworkMap.load(path)
    assert networks.network_for("198.18.1.7") == "a"
    assert networks.network_for("svc.corp-a.internal") == "a"
    assert networks.network_for("SVC.Corp-A.Internal") == "a"
    assert networks.network_for("10.20.3.4") == "b"
    assert networks.network_for("api.b.internal") == "b"
    assert networks.network_for("[fd00::1]") == "b"
    assert networks.network_for("example.org") == "edge"
    assert networks.network_for("198.18.1.7", pinned="b") == "b"
    assert networks.names == {"edge", "a", "b"}


def test_no_file_sends_everything_to_the_default() -> None:
    assert NetworkMap.load(None, "default").network_for("10.0.0.1") == "default"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("networks: [1, 2]", "'networks' must map names"),
        ("networks:\n  a: ['10.0.0.0/33']", "network 'a'"),
        ("networks:\n  'bad name': ['x']", "must be letters"),
        ("networks: {a: {x: 1}}", "needs a list"),
        (": : :", "not valid YAML"),
    ],
)
def test_bad_networks_files_name_the_problem(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "networks.yaml"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        NetworkMap.load(path)


def test_settings_from_environment() -> None:
    settings = Settings.from_env(
        {
            "PMRUNNER_REDIS_URL": "redis://redis.internal:6379/3",
            "PMRUNNER_RUN_DEADLINE": "90",
            "PMRUNNER_RETENTION_RUNS": "50",
            "PMRUNNER_WEBHOOKS": "http://a.internal/x, http://b.internal/y",
            "PMRUNNER_NETWORKS_FILE": "/etc/pmrunner/networks.yaml",
        }
    )
    assert settings.redis_url == "redis://redis.internal:6379/3"
    assert settings.run_deadline == 90.0
    assert settings.retention_runs == 50
    assert settings.webhooks == ("http://a.internal/x", "http://b.internal/y")
    assert settings.networks_file == Path("/etc/pmrunner/networks.yaml")
    assert settings.queue_for("a") == "net.a"


def test_bad_setting_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="PMRUNNER_RUN_DEADLINE"):
        Settings.from_env({"PMRUNNER_RUN_DEADLINE": "soon"})
