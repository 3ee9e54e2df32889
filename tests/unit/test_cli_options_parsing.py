"""``pmrunner run`` options: parsing into settings, bad values, usage errors, colour."""

from __future__ import annotations

import io
from pathlib import Path

import click
import pytest

from pmrunner import __version__
from pmrunner.cli import RunSettings, bail_enabled, normalise_bail, parse_run_options, use_color
from pmrunner.errors import InputError
from runtime.options import RunOptions
from tests.unit.cli_options_helpers import invoke, single_error_line

# --- parsing ---------------------------------------------------------------------------


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PMRUNNER_POSTMAN_API_KEY", "POSTMAN_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = parse_run_options(["collection.json"])
    assert settings == RunSettings(
        collection="collection.json",
        options=RunOptions(working_dir=settings.options.working_dir),
    )
    assert settings.reporters == ("cli",)
    assert settings.color == "auto"
    assert settings.options.working_dir == Path.cwd()


def test_every_option_lands_in_the_settings(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    cert = tmp_path / "client.pem"
    key = tmp_path / "client.key"
    for path in (ca, cert, key):
        path.write_text("-----BEGIN-----\n")
    settings = parse_run_options(
        [
            "c.json",
            *("-e", "env.json", "-g", "globals.json", "-d", "data.csv", "-n", "3"),
            *("--folder", "Users", "--folder", "Health"),
            *("--export-environment", "out/env.json", "--export-globals", "out/g.json"),
            *("--delay-request", "25", "--timeout", "60000"),
            *("--timeout-request", "5000", "--timeout-script", "1000"),
            *("-k", "--ignore-redirects", "--bail", "-x", "--working-dir", str(tmp_path)),
            *("--ssl-extra-ca-certs", str(ca), "--ssl-client-cert", str(cert)),
            *("--ssl-client-key", str(key), "--ssl-client-passphrase", "pw"),
            *("-r", "cli,json", "-r", "junit", "--reporter-json-export", "r/run.json"),
            *("--reporter-junit-export", "r/run.xml", "--color", "off", "--verbose"),
            *("--disable-unicode", "--postman-api-key", "PMAK-x"),
        ]
    )
    assert (settings.collection, settings.environment, settings.globals) == (
        "c.json",
        "env.json",
        "globals.json",
    )
    assert settings.iteration_data == Path("data.csv")
    assert settings.export_environment == Path("out/env.json")
    assert settings.export_globals == Path("out/g.json")
    assert settings.reporters == ("cli", "json", "junit")
    assert settings.json_export == Path("r/run.json")
    assert settings.junit_export == Path("r/run.xml")
    assert (settings.color, settings.unicode, settings.verbose) == ("off", False, True)
    assert settings.suppress_exit_code is True
    assert settings.postman_api_key == "PMAK-x"
    options = settings.options
    assert options.iterations == 3
    assert options.folders == ("Users", "Health")
    assert options.delay_request_ms == 25
    assert (options.timeouts.run, options.timeouts.request, options.timeouts.script) == (
        60000,
        5000,
        1000,
    )
    assert options.bail is True
    assert options.follow_redirects is False
    assert options.working_dir == tmp_path.resolve()
    tls = options.tls
    assert tls.verify is False
    assert (tls.extra_ca_certs, tls.client_cert, tls.client_key) == (ca, cert, key)
    assert tls.client_passphrase == "pw"


def test_the_api_key_can_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMRUNNER_POSTMAN_API_KEY", "PMAK-from-env")
    assert parse_run_options(["c.json"]).postman_api_key == "PMAK-from-env"


def test_settings_never_show_the_api_key() -> None:
    assert "PMAK-secret" not in repr(parse_run_options(["c", "--postman-api-key", "PMAK-secret"]))


@pytest.mark.parametrize(
    ("argv", "bail", "collection"),
    [
        (["--bail", "c.json"], True, "c.json"),
        (["c.json", "--bail"], True, "c.json"),
        (["--bail", "failure", "c.json"], True, "c.json"),
        (["--bail", "folder", "c.json"], False, "c.json"),
        (["--bail", "folder,failure", "c.json"], True, "c.json"),
        (["--bail=failure", "c.json"], True, "c.json"),
        (["c.json"], False, "c.json"),
    ],
)
def test_bail_takes_an_optional_modifier(argv: list[str], bail: bool, collection: str) -> None:
    settings = parse_run_options(argv)
    assert settings.options.bail is bail
    assert settings.collection == collection


def test_normalise_bail_leaves_arguments_after_double_dash() -> None:
    assert normalise_bail(["--bail", "--", "--bail"]) == ["--bail=folder,failure", "--", "--bail"]
    with pytest.raises(InputError, match="--bail"):
        bail_enabled("sometimes")


def test_no_color_wins_over_color() -> None:
    assert parse_run_options(["c", "--color", "on", "--no-color"]).color == "off"
    assert parse_run_options(["c", "--color", "ON"]).color == "on"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-n", "abc"], "--iteration-count must be a whole number of at least 1, not 'abc'"),
        (["-n", "0"], "--iteration-count must be a whole number of at least 1"),
        (["--delay-request", "-5"], "--delay-request must be a whole number of at least 0"),
        (["--timeout-request", "1.5"], "--timeout-request must be a whole number"),
        (["--color", "purple"], "--color must be one of on, off, auto, not 'purple'"),
        (["-r", "cli,htmlextra"], "--reporters: unknown reporter 'htmlextra'"),
        (["--bail=always"], "--bail accepts folder and failure, not 'always'"),
        (["--ssl-client-cert", "missing.pem"], "--ssl-client-cert: no such file 'missing.pem'"),
        (["--working-dir", "no/such/dir"], "--working-dir: no such folder 'no/such/dir'"),
    ],
)
def test_bad_values_print_one_error_line_and_exit_1(argv: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_run_options(["c.json", *argv])
    line = single_error_line(invoke("run", "c.json", *argv))
    assert message in line


@pytest.mark.parametrize(
    "argv",
    [["run"], ["run", "c.json", "--no-such-option"], ["run", "c.json", "-e"], ["nothing"]],
)
def test_usage_errors_keep_clicks_exit_code_2(argv: list[str]) -> None:
    result = invoke(*argv)
    assert result.exit_code == 2
    assert "Error:" in result.stderr
    with pytest.raises(click.UsageError):
        if argv[0] == "run":
            parse_run_options(argv[1:])
        else:
            raise click.UsageError("not the run command")


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert __version__ in result.stdout


# --- colour ----------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_use_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert use_color("on", io.StringIO()) is True
    assert use_color("off", _Terminal()) is False
    assert use_color("auto", io.StringIO()) is False
    assert use_color("auto", _Terminal()) is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_color("auto", _Terminal()) is False
