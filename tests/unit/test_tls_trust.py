"""TLS trust as users configure it, through the real environment of ``pmrunner run``.

A throw-away CA (trustme) signs the certificate of an HTTPS server on
loopback. Each way of trusting it (the variables Python, OpenSSL and Node
read, pmrunner's own, ``--ssl-extra-ca-certs``) is tried alone, in a
subprocess whose environment holds no other trust variable; the request and
its ``pm.sendRequest`` must both get through. ``strictSSL: false`` on a
request covers its ``pm.sendRequest`` too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.transport import TRUST_VARIABLES
from tests.servers import LoopbackServer, TlsMaterial, make_tls_material

ROOT = Path(__file__).resolve().parents[2]
CHECKS = [
    'pm.test("request trusted", () => pm.response.to.have.status(200));',
    'pm.sendRequest(pm.environment.get("url"), (error, response) => {',
    '  pm.test("sendRequest trusted", () => {',
    "    pm.expect(error ? error.message : null).to.equal(null);",
    "    pm.expect(response.code).to.equal(200);",
    "  });",
    "});",
]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def https_url(tls: TlsMaterial) -> Iterator[str]:
    server = LoopbackServer(ssl_context=tls.server_context()).start()
    try:
        yield server.url("/echo")
    finally:
        server.stop()


def collection_file(directory: Path, behavior: dict[str, Any] | None = None) -> Path:
    item: dict[str, Any] = {
        "name": "over TLS",
        "request": {"method": "GET", "url": "{{url}}"},
        "event": [{"listen": "test", "script": {"exec": CHECKS}}],
    }
    if behavior is not None:
        item["protocolProfileBehavior"] = behavior
    path = directory / "tls.postman_collection.json"
    path.write_text(json.dumps({"info": {"name": "tls"}, "item": [item]}))
    return path


def run_pmrunner(
    directory: Path, url: str, trust: dict[str, str], *args: str, behavior: Any = None
) -> dict[str, Any]:
    """``pmrunner run`` in a subprocess whose only trust settings are ``trust``."""
    env = {key: value for key, value in os.environ.items() if key not in TRUST_VARIABLES}
    env.update(trust)
    report = directory / "report.json"
    command = [sys.executable, "-m", "pmrunner.cli", "run"]
    command += [str(collection_file(directory, behavior)), "--env-var", f"url={url}"]
    command += ["-r", "json", "--reporter-json-export", str(report), *args]
    subprocess.run(command, env=env, cwd=ROOT, capture_output=True, timeout=120, check=False)
    return json.loads(report.read_text())


def outcomes(report: dict[str, Any]) -> dict[str, Any]:
    (execution,) = report["run"]["executions"]
    return {
        "assertions": {a["assertion"]: not a.get("error") for a in execution["assertions"]},
        "errors": [f["error"]["message"] for f in report["run"]["failures"]],
    }


def hashed_directory(tls: TlsMaterial, directory: Path) -> Path:
    """A directory in OpenSSL's hashed layout holding the CA, as ``SSL_CERT_DIR`` expects."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to name a certificate by its subject hash")
    subject_hash = subprocess.run(
        [openssl, "x509", "-hash", "-noout", "-in", str(tls.ca_file)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    hashed = directory / "certs"
    hashed.mkdir()
    shutil.copy(tls.ca_file, hashed / f"{subject_hash}.0")
    return hashed


TRUSTED = {"assertions": {"request trusted": True, "sendRequest trusted": True}, "errors": []}


@pytest.mark.parametrize(
    "variable",
    ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "PMRUNNER_EXTRA_CA_CERTS"],
)
def test_a_ca_file_named_by_one_variable_is_trusted(
    variable: str, tls: TlsMaterial, https_url: str, tmp_path: Path
) -> None:
    report = run_pmrunner(tmp_path, https_url, {variable: str(tls.ca_file)})
    assert outcomes(report) == TRUSTED


def test_a_hashed_directory_in_ssl_cert_dir_is_trusted(
    tls: TlsMaterial, https_url: str, tmp_path: Path
) -> None:
    hashed = hashed_directory(tls, tmp_path)
    report = run_pmrunner(tmp_path, https_url, {"SSL_CERT_DIR": f"/nonexistent:{hashed}"})
    assert outcomes(report) == TRUSTED


def test_the_extra_ca_option_is_trusted(tls: TlsMaterial, https_url: str, tmp_path: Path) -> None:
    report = run_pmrunner(tmp_path, https_url, {}, "--ssl-extra-ca-certs", str(tls.ca_file))
    assert outcomes(report) == TRUSTED


def test_a_ca_named_nowhere_is_not_trusted(https_url: str, tmp_path: Path) -> None:
    result = outcomes(run_pmrunner(tmp_path, https_url, {}))
    assert result["assertions"] == {"request trusted": False, "sendRequest trusted": False}
    request_error, _, send_request_error = result["errors"]
    assert "unable to get local issuer certificate" in request_error
    assert send_request_error == "expected 'certificate verification failed for 1…' to equal null"


def test_strict_ssl_false_covers_the_requests_send_request(https_url: str, tmp_path: Path) -> None:
    report = run_pmrunner(tmp_path, https_url, {}, behavior={"strictSSL": False})
    assert outcomes(report) == TRUSTED


def test_a_variable_naming_a_missing_file_is_a_clear_error(https_url: str, tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key not in TRUST_VARIABLES}
    env["SSL_CERT_FILE"] = str(tmp_path / "missing.pem")
    command = [sys.executable, "-m", "pmrunner.cli", "run", str(collection_file(tmp_path))]
    result = subprocess.run(
        [*command, "--env-var", f"url={https_url}"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "SSL_CERT_FILE" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
