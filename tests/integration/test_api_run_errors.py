"""A monitor run that could not start says why in the Collection Runs API, as documented."""

from __future__ import annotations

import pytest
import requests
import schemathesis
from celery import Celery

from pmrunner.errors import InputError
from runtime.reporters.run_shapes import build_report
from runtime.results import Run, utc_now
from scheduler.monitors import Monitor
from tasks.context import Services
from tasks.monitors import report_failed_start

# The *_fixture names are fixtures: pytest finds them under the names their decorators give.
from tests.integration.api_helpers import (  # noqa: F401
    AUTH,
    api_settings_fixture,
    api_url_fixture,
    echo_url_fixture,
)

pytestmark = pytest.mark.integration
RUNS = "/collections/{collectionId}/runs"
RUN = "/collections/{collectionId}/runs/{runId}"
COLLECTION_UID = "12345678-coll-errors"


def test_a_run_that_could_not_start_shows_its_error_in_the_runs_api(
    api_url: str, app: Celery
) -> None:
    services = Services.of(app)
    ran = Run(collection_id="coll-errors", collection_name="Errors", finished_at=utc_now())
    services.store.save(build_report(ran, run_id="run-that-ran", source="monitor"))
    monitor = Monitor.from_dict(
        {
            "uid": "mon-errors",
            "name": "Errors",
            "schedule": {"cron": "0 0 1 1 *"},
            "source": "postman",
            "collection": COLLECTION_UID,
        }
    )
    reason = InputError("GET /environments/e-1 answered 200 with a body that is not JSON")
    report_failed_start(services, monitor, "run-not-started", reason, 1, None, "monitor")

    schema = schemathesis.openapi.from_url(api_url + "/openapi.json", headers=AUTH)
    documented = schema.raw_schema["components"]["schemas"]
    for name in ("CollectionRunSummary", "CollectionRun"):
        assert documented[name]["properties"]["error"] == {"$ref": "#/components/schemas/RunError"}
    base = f"{api_url}/collections/{COLLECTION_UID}/runs"
    listing = requests.get(base, headers=AUTH, timeout=10)
    failed = requests.get(base, params={"status": "failed"}, headers=AUTH, timeout=10)
    detail = requests.get(f"{base}/run-not-started", headers=AUTH, timeout=10)
    for path, answer in ((RUNS, listing), (RUNS, failed), (RUN, detail)):
        assert answer.status_code == 200, answer.text
        schema[path]["GET"].validate_response(answer)

    error = detail.json()["run"]["error"]
    assert error == {
        "name": "InputError",
        "message": f"could not start: {reason}",
    }
    by_id = {run["id"]: run for run in listing.json()["runs"]}
    assert by_id["run-not-started"]["error"] == error
    assert "error" not in by_id["run-that-ran"]
    assert [run["error"] for run in failed.json()["runs"]] == [error]
