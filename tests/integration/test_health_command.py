"""``pmrunner health``: the image's HEALTHCHECK, against a real Redis and a real HTTP server."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pmrunner.cli import pmrunner
from pmrunner.cli.demo import demo_api
from tests.integration.test_up import free_port
from worker.settings import Settings

pytestmark = pytest.mark.integration


def health(redis_url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(pmrunner, ["health", *args], env={"PMRUNNER_REDIS_URL": redis_url})
    return result.exit_code, result.output


def test_healthy_when_redis_and_the_url_answer(settings: Settings) -> None:
    with demo_api() as server:
        assert health(settings.redis_url, "--url", server.url + "/health") == (0, "healthy\n")


def test_unhealthy_in_one_line_when_redis_or_the_url_does_not_answer(settings: Settings) -> None:
    code, output = health(f"redis://127.0.0.1:{free_port()}/0")
    assert (
        code == 1 and output.startswith("error: Redis does not answer") and output.count("\n") == 1
    )
    code, output = health(settings.redis_url, "--url", f"http://127.0.0.1:{free_port()}/health")
    assert code == 1 and "does not answer" in output and "Traceback" not in output
