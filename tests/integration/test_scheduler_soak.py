"""Soak: ``pmrunner runner start``, default settings, a fake Postman as strict as the real one.

Twenty monitors (six on a 10-second 6-field cron, fourteen every minute)
run for about eleven minutes. Postman's limits hold per key (10 calls in
10 s on monitor endpoints, 300 a minute), and four 60-second outages come
one after the other: 500s, hangs, malformed bodies, dropped connections.
The claims: no 429 caused by the runner, no slot skipped, every due slot
run, lag from slot to the first request under a second at p99, recovery
within one poll interval, and ``/health`` agreeing with ``/metrics``
throughout. It prints the API calls per minute and the lag figures
(measured from 30 s after the first good poll: a cold worker's first
requests cost seconds, which is not the scheduler's lag).
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from celery import Celery

from tasks.context import Services
from tests.fakes.fake_postman import FakePostman
from tests.integration.test_runner_start import Runner, free_port, runners
from worker.settings import Settings

__all__ = ["runners"]  # a fixture
pytestmark = pytest.mark.integration
JSON = dict[str, Any]
API_KEY = "soak-api-key"
POLL_INTERVAL = 30.0  # the default
STEADY, OUTAGE, AFTER, WARM_UP = 120.0, 60.0, 60.0, 30.0
OUTAGES = ("500", "hang", "malformed", "dropped")


class Arrivals:
    """A loopback target that notes when each monitor's request came in."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)
        times = self.times

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                times[self.path.strip("/")].append(time.time())
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@contextmanager
def soak_postman(target: str) -> Iterator[tuple[FakePostman, list[JSON]]]:
    with FakePostman() as postman:
        environment = postman.add_environment("soak", {"baseUrl": target})
        monitors = []
        for n in range(20):
            name = f"m{n:02d}"
            collection = postman.add_collection(
                {
                    "info": {"_postman_id": f"soak-{name}", "name": name},
                    "item": [{"name": "hit", "request": {"url": "{{baseUrl}}/" + name}}],
                }
            )
            cron = "*/10 * * * * *" if n < 6 else "* * * * *"
            monitors.append(
                postman.add_monitor(
                    f"{name} [soak]",
                    collection_uid=collection,
                    environment_uid=environment,
                    cron=cron,
                )
            )
        yield postman, monitors


def sample(api: str) -> tuple[str, str]:
    """``/health``'s source state and the state ``/metrics`` says is 1."""
    health = requests.get(f"{api}/health", timeout=10).json()["monitorSource"]
    text = requests.get(f"{api}/metrics", timeout=10).text
    states = [
        line.split('state="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("pmrunner_monitor_source_state{") and line.endswith(" 1.0")
    ]
    return health, states[0] if states else "?"


def answers_healthy(api: str) -> bool:
    try:
        return sample(api)[0] == "healthy"
    except requests.ConnectionError:
        return False


def watch(api: str, seconds: float, seen: list[tuple[float, str, str]]) -> None:
    """Sample health and metrics every 2 s for ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen.append((time.time(), *sample(api)))
        time.sleep(2)


@pytest.mark.timeout(1200)  # an 11-minute soak, by design
def test_soak_twenty_monitors_through_outages(
    app: Celery, settings: Settings, tmp_path: Path, runners: list[Runner]
) -> None:
    services = Services.of(app)
    target = Arrivals()
    api_port = free_port()
    api = f"http://127.0.0.1:{api_port}"
    seen: list[tuple[float, str, str]] = []
    windows: list[tuple[str, float, float]] = []
    with soak_postman(target.url) as (postman, monitors):
        runner = Runner(
            settings,
            ["--key", postman.api_key, "--marker", "[soak]", "--id", "soak"],
            tmp_path / "runner.log",
            {
                "PMRUNNER_POSTMAN_BASE_URL": postman.url,
                "PMRUNNER_API_KEY": API_KEY,
                "PMRUNNER_API_PORT": str(api_port),
            },
        )
        runners.append(runner)
        try:
            runner.wait_for(lambda: answers_healthy(api), timeout=90)
            time.sleep(WARM_UP)  # the first runs of a cold worker are not the scheduler's lag
            started = time.time()
            watch(api, STEADY, seen)
            for kind in OUTAGES:
                postman.start_outage(kind)
                begin = time.time()
                watch(api, OUTAGE, seen)
                postman.end_outage()
                ended = time.time()
                windows.append((kind, begin, ended))
                watch(api, AFTER, seen)
            finished = time.time()
        finally:
            exit_code = runner.terminate()
        calls = [request.at for request in postman.requests]
        self_caused = postman.rate_limited
    assert exit_code == 0, runner.output()[-3000:]
    report(calls, started, finished, target, monitors, windows, seen)
    assert self_caused == 0, f"{self_caused} answers 429 caused by the runner"
    skipped = sum(
        services.registry.redis.llen(f"{settings.key_prefix}monitor:{m['uid']}:skipped")
        for m in monitors
    )
    assert skipped == 0, f"{skipped} slots skipped"
    lags = check_every_slot_ran(target, monitors, started, finished)
    lags.sort()
    assert lags[int(len(lags) * 0.99)] < 1.0, f"lag p99 {lags[int(len(lags) * 0.99)]:.3f} s"
    check_health(seen, windows)


def expected_slots(cron_every: float, start: float, end: float) -> list[float]:
    first = (int(start // cron_every) + 1) * cron_every
    return [first + n * cron_every for n in range(int((end - first) // cron_every) + 1)]


def check_every_slot_ran(
    target: Arrivals, monitors: list[JSON], start: float, end: float, worst: list[Any] | None = None
) -> list[float]:
    """Every slot in the soak has its request within 5 s; the lags of all slots."""
    lags = []
    for monitor in monitors:
        name = monitor["name"].split()[0]
        every = 10.0 if monitor["schedule"]["cron"].startswith("*/10") else 60.0
        arrivals = sorted(target.times[name])
        for slot in expected_slots(every, start, end - 5):
            hits = [at for at in arrivals if slot <= at < slot + every]
            assert hits, f"{name}: slot {datetime.fromtimestamp(slot, UTC)} did not run"
            assert len(hits) == 1, f"{name}: slot {slot} ran {len(hits)} times"
            lags.append(hits[0] - slot)
            if worst is not None:
                worst.append((hits[0] - slot, datetime.fromtimestamp(slot, UTC).time(), name))
    return lags


def check_health(
    seen: list[tuple[float, str, str]], windows: list[tuple[str, float, float]]
) -> None:
    """/health and /metrics agree; degraded during each outage; healthy within a poll after."""
    disagreements = [(at, h, m) for at, h, m in seen if h != m]
    # A sample may straddle a poll's commit: allow an isolated one, never two in a row.
    assert len(disagreements) <= len(windows) * 2, disagreements
    for kind, begin, ended in windows:
        # Degraded from the first poll that fails (within a poll interval and a
        # timeout of the outage's start) to its end.
        during = [h for at, h, _ in seen if begin < at < ended]
        first = during.index("degraded") if "degraded" in during else len(during)
        assert first < len(during) and all(h == "degraded" for h in during[first:]), (kind, during)
        healthy_again = [at for at, h, _ in seen if at > ended and h == "healthy"]
        assert healthy_again, f"{kind}: never healthy again"
        recovery = healthy_again[0] - ended
        print(f"{kind}: healthy again {recovery:.1f} s after the outage ended")
        assert recovery <= POLL_INTERVAL, f"{kind}: recovery took {recovery:.1f} s"


def report(
    calls: list[float],
    start: float,
    end: float,
    target: Arrivals,
    monitors: list[JSON],
    windows: list[tuple[str, float, float]],
    seen: list[tuple[float, str, str]],
) -> None:
    minutes = (end - start) / 60
    in_soak = [at for at in calls if start <= at <= end]
    per_minute: dict[int, int] = defaultdict(int)
    for at in in_soak:
        per_minute[int((at - start) // 60)] += 1
    print(
        f"\nsoak: {minutes:.1f} min, {len(in_soak)} Postman API calls, "
        f"{len(in_soak) / minutes:.1f} a minute"
    )
    print("calls per minute:", [per_minute[n] for n in range(int(minutes) + 1)])
    worst: list[Any] = []
    lags = sorted(check_every_slot_ran(target, monitors, start, end, worst))
    print("worst lags:", [(f"{lag:.2f}", str(at), name) for lag, at, name in sorted(worst)[-8:]])
    print("load average at the end:", os.getloadavg())
    print(
        f"slots run: {len(lags)}, lag p50 {lags[len(lags) // 2] * 1000:.0f} ms, "
        f"p99 {lags[int(len(lags) * 0.99)] * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms"
    )
