"""A report with nothing to mask is the same as one passed through the masking."""

from __future__ import annotations

from runtime.masking import mask_json
from runtime.reporters import build_report
from runtime.reporters.html import render_html
from runtime.reporters.json_report import report_text
from tests.unit.reporting_helpers import SECRET, sample_run


def test_a_run_without_secrets_reports_as_a_masked_copy_would() -> None:
    run = sample_run(iterations=2)
    run.environment = [{**variable, "type": "default"} for variable in run.environment]
    report = build_report(run)
    assert SECRET in report_text(report)  # no longer a secret: shown, as newman does
    masked = mask_json(report, {"a value that appears nowhere"})
    assert report == masked
    assert report_text(report) == report_text(masked)
    nowhere = {"a value that appears nowhere"}  # masking then copies, and changes nothing
    assert report_text(report) == report_text(build_report(run, secrets=nowhere))
    assert render_html(run) == render_html(run, secrets=nowhere)


def test_a_secret_is_still_masked() -> None:
    run = sample_run()
    assert SECRET not in report_text(build_report(run))
    assert SECRET not in render_html(run)
