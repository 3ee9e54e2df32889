"""``-r html``: one self-contained page, rendered in headless Chromium and read back.

The page is opened from disk with the network off for Chromium's sake (it
needs nothing else); what Chromium's DOM holds after rendering is what a
person sees: failures first, the totals, the timeline, each request's
assertions, and no secret.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pmrunner.cli.demo import demo_api, examples_folder
from tests.unit.cli_options_helpers import invoke, write

CHROMIUM = shutil.which("chromium")
SECRET = "s3cret-token-value"


@pytest.fixture()
def demo_url() -> Iterator[str]:
    with demo_api() as server:
        yield server.url


class Sections(HTMLParser):
    """The visible text of each ``<section id=...>`` and the resources the page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.order: list[str] = []
        self.loads: list[str] = []
        self._current: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "section" and values.get("id"):
            self._current = str(values["id"])
            self.order.append(self._current)
            self.text[self._current] = ""
        if tag in ("script", "link", "img", "iframe") or values.get("src"):
            self.loads.append(tag)

    def handle_data(self, data: str) -> None:
        if self._current:
            self.text[self._current] += data + " "


def rendered_dom(page: Path) -> str:
    """The DOM Chromium builds for the page (``--dump-dom``)."""
    assert CHROMIUM is not None
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_html_report_renders_failures_first_timeline_and_assertions(
    demo_url: str, tmp_path: Path
) -> None:
    environment = write(
        tmp_path / "env.json",
        {
            "name": "demo",
            "values": [
                {"key": "baseUrl", "value": demo_url, "type": "default"},
                {"key": "token", "value": SECRET, "type": "secret"},
            ],
        },
    )
    payments = examples_folder() / "collections" / "payments.postman_collection.json"
    document = json.loads(payments.read_text())
    document["item"][0]["request"]["header"] = [{"key": "X-Api-Key", "value": "{{token}}"}]
    collection = write(tmp_path / "payments.json", document)
    page = tmp_path / "out" / "report.html"
    result = invoke(
        "run",
        str(collection),
        "-e",
        str(environment),
        "-r",
        "html",
        "--reporter-html-export",
        str(page),
    )
    assert result.exit_code == 1, result.output  # the payments check fails on purpose
    assert result.output == ""  # html alone prints nothing
    assert SECRET not in page.read_text()
    assert "X-Api-Key: ********" in page.read_text()  # the header was sent, masked

    dom = rendered_dom(page)
    sections = Sections()
    sections.feed(dom)
    assert sections.order == ["failures", "summary", "timeline", "requests"]
    assert sections.loads == []  # self-contained: nothing fetched
    failures = " ".join(sections.text["failures"].split())
    assert "Failures (1)" in failures
    assert "Payment provider status" in failures
    assert "expected response to have status code 200 but got 503" in failures
    timeline = " ".join(sections.text["timeline"].split())
    assert re.search(r"Health GET 200 OK \d+ms .*Payment provider status GET 503", timeline)
    assert len(re.findall(r'class="bar (passed|failed)" style="left:[\d.]+%;width:', dom)) == 2
    requests = " ".join(sections.text["requests"].split())
    assert "✘ payment provider is up: expected response to have status code 200" in requests
    assert "✔ answers within 1 s" in requests
    assert "payment provider unreachable" in requests  # the response body
    summary = " ".join(sections.text["summary"].split())
    assert "assertions 3 1" in summary


def test_html_report_goes_to_newman_folder_by_default(demo_url: str, tmp_path: Path) -> None:
    collection = examples_folder() / "collections" / "shop.postman_collection.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        result = invoke("run", str(collection), "--env-var", f"baseUrl={demo_url}", "-r", "html")
    assert result.exit_code == 0, result.output
    pages = list((tmp_path / "newman").glob("Demo-shop-*.html"))
    assert len(pages) == 1
    assert 'Failures</h2><p class="passed">None.</p>' in pages[0].read_text()
