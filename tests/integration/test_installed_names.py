"""The installed package puts no generic names in site-packages, and a user's modules break nothing.

The wheel is built from the checkout and installed into a fresh virtualenv.
Only ``pmrunner`` and ``worker`` (``celery -A worker``) are top-level
packages there. In a working directory holding ``tasks.py``, ``store.py``,
``runtime.py``, ``api.py`` and ``scheduler.py`` (each raising when
imported), the installed ``celery -A worker worker`` starts and runs a
distributed run's request, and ``pmrunner run`` works, locally and
``--distributed``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery

from tasks.context import Services
from tests.echo_server import serve
from tests.integration.conftest import ROOT, wait_until
from tests.integration.terminal_helpers import clean_env
from tests.unit.test_own_packages import shadowing_folder
from worker.settings import Settings

pytestmark = pytest.mark.integration
INSTALL_SECONDS = 600


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(folder), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=INSTALL_SECONDS,
    )
    (built,) = folder.glob("pmrunner-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    folder = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=120)
    subprocess.run(
        [str(folder / "bin" / "pip"), "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=INSTALL_SECONDS,
    )
    return folder


def test_the_wheel_installs_only_pmrunner_and_worker_at_the_top(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"pmrunner", "worker"}
    for package in ("api", "runtime", "scheduler", "store", "tasks"):
        assert f"pmrunner/_packages/{package}/__init__.py" in names
    assert "pmrunner/_packages/api/openapi.yaml" in names
    assert any(n.startswith("pmrunner/_packages/runtime/sandbox/vendor/") for n in names)
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)


@pytest.fixture()
def echo_url() -> Iterator[str]:
    with serve() as url:
        yield url


def test_a_users_modules_in_the_working_directory_break_neither_worker_nor_runs(
    venv: Path, app: Celery, settings: Settings, tmp_path: Path, echo_url: str
) -> None:
    (tmp_path / "project").mkdir()
    cwd = shadowing_folder(tmp_path / "project")
    collection = cwd / "check.postman_collection.json"
    collection.write_text(
        json.dumps(
            {
                "info": {"_postman_id": "coll-installed", "name": "Installed"},
                "item": [
                    {
                        "name": "get",
                        "request": {"method": "GET", "url": f"{echo_url}/get"},
                        "event": [
                            {
                                "listen": "test",
                                "script": {
                                    "exec": [
                                        "pm.test('is 200', () => pm.response.to.have.status(200));"
                                    ]
                                },
                            }
                        ],
                    }
                ],
            }
        )
    )
    env = {**clean_env(tmp_path / "data"), **settings.to_env()}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    log = tmp_path / "worker.log"
    with log.open("wb") as output:
        worker = subprocess.Popen(
            ["celery", "-A", "worker", "worker", "-P", "threads", "-c", "4", "-n", "installed@%h"],
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def ready() -> bool:
            assert worker.poll() is None, log.read_text()[-3000:]
            return any(
                "installed@" in name
                for reply in app.control.ping(timeout=0.5) or []
                for name in reply
            )

        wait_until(ready, timeout=60, what="the installed worker answered a ping")
        distributed = subprocess.run(
            ["pmrunner", "run", str(collection), "--distributed"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        local = subprocess.run(
            ["pmrunner", "run", str(collection)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(30)
    worker_log = log.read_text()
    assert "own tasks.py" not in worker_log and "is not a package" not in worker_log
    assert distributed.returncode == 0, distributed.stdout[-2000:] + distributed.stderr[-2000:]
    assert "is 200" in distributed.stdout
    (stored,) = Services.of(app).store.list("coll-installed").runs
    (execution,) = stored["run"]["executions"]
    assert execution["worker"].startswith("installed@")  # the installed worker ran it
    assert [(a["name"], a["passed"]) for a in execution["assertions"]] == [("is 200", True)]
    assert local.returncode == 0, local.stdout[-2000:] + local.stderr[-2000:]
    assert "is 200" in local.stdout
    for run in (distributed, local):
        assert "own " not in run.stdout + run.stderr
