"""docker-compose.yml and the Dockerfile, checked against the code they run.

No Docker engine runs here: the files are parsed, every command is parsed
by the real ``pmrunner``/``celery``/Flower command line, every
``PMRUNNER_*`` variable must be a settings field and parse, the mounted
monitors and networks files must load, and the networks must keep each
subnet's worker and demo target to themselves.
"""

from __future__ import annotations

import warnings
from dataclasses import fields
from typing import Any

import pytest

from scheduler.local_source import LocalMonitorSource
from tests.integration.conftest import ROOT
from tests.unit.compose_helpers import compose, dockerfile_stages, mounted_file, parse_command
from worker.routing import NetworkMap
from worker.settings import Settings

ENVIRON = {
    "REDIS_PASSWORD": "pw-1",
    "PMRUNNER_API_KEY": "key-1",
    "PMRUNNER_SECRET_KEY": "seal-1",
    "FLOWER_BASIC_AUTH": "admin:pw",
}
RUN_ROLES = {"scheduler", "api", "worker-a", "worker-b"}
SETTINGS_VARIABLES = {"PMRUNNER_" + spec.name.upper() for spec in fields(Settings)}
PMRUNNER_IMAGE_ROLES = {
    "scheduler",
    "api",
    "flower",
    "worker-a",
    "worker-b",
    "target-a",
    "target-b",
}


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return dict(compose(ENVIRON)["services"])


def commands(services: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # click's protected_args
        return {
            name: parse_command(s["command"]) for name, s in services.items() if name != "redis"
        }


def test_every_role_runs_the_one_image_with_a_command_the_code_accepts(
    services: dict[str, Any],
) -> None:
    assert set(services) == {"redis", *PMRUNNER_IMAGE_ROLES}
    images = {services[name]["image"] for name in PMRUNNER_IMAGE_ROLES}
    assert images == {"pmrunner:latest"}
    assert all(services[name]["build"] == "." for name in PMRUNNER_IMAGE_ROLES)
    parsed = commands(services)
    assert {name: sub for name, (sub, _) in parsed.items()} == {
        "scheduler": "beat",
        "api": "api",
        "flower": "flower",
        "worker-a": "worker",
        "worker-b": "worker",
        "target-a": "demo-api",
        "target-b": "demo-api",
    }
    from flower.options import options

    for argument in parsed["flower"][1].params["tornado_argv"]:
        assert argument.lstrip("-").split("=")[0] in options, argument
    for name in ("worker-a", "worker-b"):
        params = parsed[name][1].params
        assert params["pool"].__name__ == "TaskPool" and "thread" in params["pool"].__module__
        assert params["hostname"].startswith(f"{name}@")
    # Beat keeps its schedule in Redis and writes no file: no schedule path to give it.
    assert parsed["scheduler"][1].params["schedule"] == "celerybeat-schedule"


def test_environment_is_settings_fields_that_parse(services: dict[str, Any]) -> None:
    for name, service in services.items():
        environment = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        pmrunner_variables = {k for k in environment if k.startswith("PMRUNNER_")}
        unknown = pmrunner_variables - SETTINGS_VARIABLES
        assert not unknown, f"{name}: {unknown} are not pmrunner settings"
        settings = Settings.from_env(environment)  # raises on a value that does not parse
        if name in PMRUNNER_IMAGE_ROLES - {"target-a", "target-b"}:
            assert settings.redis_url == "redis://:pw-1@redis:6379/0"
    assert services["api"]["environment"]["PMRUNNER_API_KEY"] == "key-1"
    for name in RUN_ROLES:  # one sealing key for every process that touches run credentials
        assert services[name]["environment"]["PMRUNNER_SECRET_KEY"] == "seal-1", name
    assert services["flower"]["environment"]["FLOWER_BASIC_AUTH"] == "admin:pw"
    for required in ("PMRUNNER_API_KEY", "PMRUNNER_SECRET_KEY", "FLOWER_BASIC_AUTH"):
        missing = {k: v for k, v in ENVIRON.items() if k != required}
        with pytest.raises(KeyError, match=required):  # no default: Compose refuses to start
            compose(missing)


def test_redis_has_a_password_and_an_append_only_file(services: dict[str, Any]) -> None:
    command = services["redis"]["command"]
    assert command[command.index("--requirepass") + 1] == "pw-1"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(str(v).endswith(":/data") for v in services["redis"]["volumes"])
    assert "ports" not in services["redis"]  # not published


def test_each_subnet_keeps_its_worker_and_its_target(services: dict[str, Any]) -> None:
    document = compose(ENVIRON)
    assert document["networks"]["subnet-a"]["internal"] is True
    assert document["networks"]["subnet-b"]["internal"] is True
    assert services["worker-a"]["networks"] == ["subnet-a"]
    assert services["worker-b"]["networks"] == ["subnet-b"]
    assert services["target-a"]["networks"] == ["subnet-a"]
    assert services["target-b"]["networks"] == ["subnet-b"]
    assert set(services["redis"]["networks"]) >= {"subnet-a", "subnet-b", "backend"}
    for name in ("scheduler", "api", "flower"):
        assert services[name]["networks"] == ["backend"], name

    scheduler = services["scheduler"]
    networks_file = mounted_file(scheduler, scheduler["environment"]["PMRUNNER_NETWORKS_FILE"])
    network_map = NetworkMap.load(networks_file)
    parsed = commands(services)
    for target, worker in (("target-a", "worker-a"), ("target-b", "worker-b")):
        network = network_map.network_for(target)  # the service name is its host name
        assert services[worker]["environment"]["PMRUNNER_NETWORK"] == network
        assert parsed[worker][1].params["queues"] == [f"net.{network}"]
        assert services[target]["networks"] == services[worker]["networks"]


def test_example_monitors_hit_both_subnets(services: dict[str, Any]) -> None:
    from urllib.parse import urlsplit

    scheduler = services["scheduler"]
    monitors_file = mounted_file(scheduler, scheduler["environment"]["PMRUNNER_MONITORS_FILE"])
    assert services["api"]["environment"]["PMRUNNER_MONITORS_FILE"] == str(
        scheduler["environment"]["PMRUNNER_MONITORS_FILE"]
    )
    source = LocalMonitorSource(monitors_file)
    hosts = set()
    for monitor in source.monitors():
        collection = source.collection(monitor)
        hosts |= {urlsplit(i["request"]["url"]).hostname for i in collection["item"]}
    assert hosts == {"target-a", "target-b"}


def test_dockerfile_slim_non_root_bundle_baked_healthcheck() -> None:
    build, final = dockerfile_stages()
    assert build[0] == ("FROM", "python:3.11-slim AS build")
    assert any(i == "RUN" and "apt-get install" in a and "npm" in a for i, a in build)
    assert any(i == "RUN" and "pip wheel" in a for i, a in build)
    assert final[0] == ("FROM", "python:3.11-slim")
    assert not any("npm" in a for i, a in final if i == "RUN")  # no npm at run time
    assert any(i == "RUN" and "installed_bundle()" in a for i, a in final)
    users = [a for i, a in final if i == "USER"]
    assert users and users[-1] not in ("root", "0")
    healthcheck = next(a for i, a in final if i == "HEALTHCHECK")
    assert '"pmrunner", "health"' in healthcheck
    for instruction, arguments in final:
        if instruction == "ENV":
            names = {part.split("=")[0] for part in arguments.split() if "=" in part}
            assert {n for n in names if n.startswith("PMRUNNER_")} <= SETTINGS_VARIABLES
            assert not any("KEY" in n or "PASSWORD" in n for n in names)  # no secret baked in
    dockerignore = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in dockerignore and "runtime/sandbox/vendor/*.js" in dockerignore
