"""``pmrunner run`` options: parsing into settings, bad values, sources and exports."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pmrunner import __version__
from pmrunner.cli import (
    RunInputs,
    RunSettings,
    apply_overrides,
    bail_enabled,
    fetch_json_url,
    input_secrets,
    load_inputs,
    load_variables,
    normalise_bail,
    parse_run_options,
    pmrunner,
    source_of,
    use_color,
    variable_export,
    write_exports,
)
from pmrunner.errors import InputError
from runtime.loading import VariableFile, load_collection
from runtime.options import RunOptions
from runtime.results import Run
from tests.echo_server import serve
from tests.fakes.fake_postman import FakePostman


def invoke(*args: str) -> click.testing.Result:
    return CliRunner().invoke(pmrunner, list(args))


def single_error_line(result: click.testing.Result) -> str:
    """The one ``error: ...`` line a bad input must print, with exit code 1."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


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
        (["-r", "cli,html"], "--reporters: unknown reporter 'html'"),
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


# --- sources ---------------------------------------------------------------------------


class _JsonHandler(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, bytes]] = {}

    def do_GET(self) -> None:
        status, body = self.routes.get(self.path.split("?")[0], (404, b"{}"))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def json_server() -> Iterator[str]:
    _JsonHandler.routes = {
        "/collection.json": (200, json.dumps({"info": {"name": "Remote"}, "item": []}).encode()),
        "/list.json": (200, b"[1, 2]"),
        "/text": (200, b"not json"),
    }
    with serve(handler=_JsonHandler) as url:
        yield url


def test_collection_urls_are_fetched(json_server: str) -> None:
    source = source_of(f"{json_server}/collection.json?apikey=k", "collection", None)
    assert source == {"info": {"name": "Remote"}, "item": []}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/missing.json", "cannot fetch collection from {url}/missing.json: HTTP 404"),
        ("/text", "collection at {url}/text is not JSON"),
        ("/list.json", "collection at {url}/list.json is not a JSON object"),
    ],
)
def test_bad_urls_are_clear_errors_without_the_query(
    json_server: str, path: str, message: str
) -> None:
    with pytest.raises(InputError) as caught:
        fetch_json_url(f"{json_server}{path}?apikey=PMAK-hidden", "collection")
    assert str(caught.value) == message.format(url=json_server)


def test_an_unreachable_url_is_a_clear_error() -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(InputError, match=f"cannot fetch collection from http://127.0.0.1:{port}/c"):
        fetch_json_url(f"http://127.0.0.1:{port}/c", "collection")


def test_files_stay_files(tmp_path: Path) -> None:
    existing = tmp_path / "c.json"
    existing.write_text("{}")
    assert source_of(str(existing), "collection", "PMAK-x") == existing
    assert source_of("missing.json", "collection", None) == Path("missing.json")
    assert source_of("missing.json", "collection", "PMAK-x") == Path("missing.json")


def test_uids_are_fetched_from_postman_with_the_api_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FakePostman() as postman:
        monkeypatch.setenv("PMRUNNER_POSTMAN_BASE_URL", postman.url)
        collection_uid = postman.add_collection(name="From Postman")
        environment_uid = postman.add_environment("Staging", {"host": "127.0.0.1"})
        collection = source_of(collection_uid, "collection", postman.api_key)
        environment = source_of(environment_uid, "environment", postman.api_key)
    assert isinstance(collection, dict)
    assert collection["info"]["name"] == "From Postman"
    assert isinstance(environment, dict)
    assert environment["name"] == "Staging"
    assert [(v["key"], v["value"]) for v in environment["values"]] == [("host", "127.0.0.1")]


# --- exports ---------------------------------------------------------------------------


def test_variable_export_has_postmans_shape() -> None:
    values = [
        {"key": "token", "value": "t", "type": "secret", "enabled": True},
        {"key": "off", "value": 1, "enabled": False},
        "not a variable",
    ]
    document = variable_export("globals", None, values)  # type: ignore[list-item]
    assert document["name"] == "globals"
    assert document["_postman_variable_scope"] == "globals"
    assert document["_postman_exported_using"] == f"pmrunner/{__version__}"
    assert document["_postman_exported_at"].endswith("Z")
    assert len(document["id"]) == 36
    assert document["values"] == [
        {"key": "token", "value": "t", "type": "secret", "enabled": True},
        {"key": "off", "value": 1, "type": "default", "enabled": False},
    ]


def test_variable_export_keeps_the_source_id_and_name() -> None:
    source = VariableFile(name="Staging", id="env-1", values=[])
    document = variable_export("environment", source, [{"key": "a", "value": "b"}])
    assert (document["id"], document["name"]) == ("env-1", "Staging")
    assert document["_postman_variable_scope"] == "environment"


def test_exports_are_written_with_real_values(tmp_path: Path) -> None:
    settings = parse_run_options(
        [
            "c.json",
            *("--export-environment", str(tmp_path / "a" / "env.json")),
            *("--export-globals", str(tmp_path / "b" / "globals.json")),
        ]
    )
    collection = load_collection({"info": {"name": "C"}, "item": []})
    environment = VariableFile(
        name="Staging", id="env-1", values=[{"key": "token", "value": "old", "type": "secret"}]
    )
    inputs = RunInputs(collection, environment, None, None)
    run = Run(
        collection_id="c",
        collection_name="C",
        environment=[
            {"key": "token", "value": "real", "type": "any", "enabled": True},
            {"key": "new", "value": "set by a script", "type": "any"},
        ],
        globals=[{"key": "g", "value": "1", "type": "default", "enabled": True}],
    )
    write_exports(settings, inputs, run)
    exported = json.loads((tmp_path / "a" / "env.json").read_text(encoding="utf-8"))
    assert exported["id"] == "env-1"
    assert exported["values"] == [
        {"key": "token", "value": "real", "type": "secret", "enabled": True},
        {"key": "new", "value": "set by a script", "type": "any", "enabled": True},
    ]
    globals_ = json.loads((tmp_path / "b" / "globals.json").read_text(encoding="utf-8"))
    assert globals_["_postman_variable_scope"] == "globals"
    assert globals_["values"][0]["key"] == "g"


def test_an_export_that_cannot_be_written_names_the_option(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    settings = parse_run_options(["c.json", "--export-globals", str(blocker / "g.json")])
    inputs = RunInputs(load_collection({"info": {"name": "C"}, "item": []}), None, None, None)
    with pytest.raises(InputError, match="--export-globals: cannot write"):
        write_exports(settings, inputs, Run(collection_id="c", collection_name="C"))


# --- variables and inputs --------------------------------------------------------------


def test_env_var_and_global_var_pairs() -> None:
    settings = parse_run_options(
        ["c", "--env-var", "a=b=c", "--env-var", "empty=", "--global-var", "g=1"]
    )
    assert settings.env_vars == (("a", "b=c"), ("empty", ""))
    assert settings.global_vars == (("g", "1"),)


def test_a_bad_env_var_is_one_error_line() -> None:
    line = single_error_line(invoke("run", "c.json", "--env-var", "novalue"))
    assert line == "error: --env-var expects key=value, got 'novalue'"


def test_overrides_replace_values_and_add_new_ones() -> None:
    loaded = VariableFile(
        name="Local",
        id="e",
        values=[{"key": "host", "value": "old", "enabled": False, "type": "default"}],
    )
    result = apply_overrides(loaded, [("host", "127.0.0.1"), ("port", "80")])
    assert result is loaded
    assert loaded.values == [
        {"key": "host", "value": "127.0.0.1", "enabled": True, "type": "default"},
        {"key": "port", "value": "80", "type": "default", "enabled": True},
    ]
    created = apply_overrides(None, [("a", "1")])
    assert created is not None
    assert created.values == [{"key": "a", "value": "1", "type": "default", "enabled": True}]
    assert apply_overrides(None, []) is None


def write(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_load_inputs_reads_files_and_applies_overrides(tmp_path: Path) -> None:
    collection = write(tmp_path / "c.json", {"info": {"name": "Files"}, "item": []})
    environment = write(
        tmp_path / "e.json",
        {"name": "Env", "values": [{"key": "k", "value": "v", "type": "secret"}]},
    )
    globals_ = write(tmp_path / "g.json", {"values": []})
    data = tmp_path / "d.csv"
    data.write_text("a,b\n1,2\n", encoding="utf-8")
    settings = parse_run_options(
        [
            str(collection),
            *("-e", str(environment), "-g", str(globals_), "-d", str(data)),
            *("--global-var", "x=y", "--ssl-client-passphrase", "pw"),
        ]
    )
    inputs = load_inputs(settings)
    assert inputs.collection.name == "Files"
    assert inputs.environment is not None
    assert inputs.environment.name == "Env"
    assert inputs.globals is not None
    assert inputs.globals.values == [{"key": "x", "value": "y", "type": "default", "enabled": True}]
    assert inputs.iteration_data is not None
    assert len(inputs.iteration_data) == 1
    assert input_secrets(settings, inputs) == {"v", "pw"}


def test_environments_can_come_from_urls(json_server: str) -> None:
    _JsonHandler.routes["/env.json"] = (200, b'{"name": "Remote", "values": [{"key": "a"}]}')
    environment = load_variables(f"{json_server}/env.json", "environment", None)
    assert environment is not None
    assert (environment.name, environment.values) == ("Remote", [{"key": "a"}])
    _JsonHandler.routes["/bad.json"] = (200, b'{"name": "Remote"}')
    with pytest.raises(InputError, match=r"environment http://127\.0\.0\.1:\d+/bad\.json"):
        load_variables(f"{json_server}/bad.json?k=v", "environment", None)


def test_a_missing_collection_is_one_error_line(tmp_path: Path) -> None:
    line = single_error_line(invoke("run", str(tmp_path / "missing.json")))
    assert "missing.json" in line


def test_a_malformed_environment_is_one_error_line(tmp_path: Path) -> None:
    collection = write(tmp_path / "c.json", {"info": {"name": "C"}, "item": []})
    environment = tmp_path / "env.json"
    environment.write_text("{not json", encoding="utf-8")
    line = single_error_line(invoke("run", str(collection), "-e", str(environment)))
    assert "env.json" in line


# --- whole runs (the real runner, a loopback echo server) ------------------------------


def echo_collection(base_url: str, expected_status: int) -> dict[str, object]:
    test = [f"pm.test('status', () => pm.response.to.have.status({expected_status}));"]
    test.append("pm.environment.set('seen', pm.environment.get('token').length);")
    return {
        "info": {"name": "Echo", "_postman_id": "echo-1"},
        "item": [
            {
                "name": "Get",
                "id": "get-1",
                "request": {
                    "method": "GET",
                    "url": f"{base_url}/get?token={{{{token}}}}",
                    "header": [{"key": "X-Token", "value": "{{token}}"}],
                },
                "event": [{"listen": "test", "script": {"exec": test}}],
            }
        ],
    }


@pytest.fixture
def echo_url() -> Iterator[str]:
    with serve() as url:
        yield url


def run_echo(
    tmp_path: Path, base_url: str, expected_status: int, *extra: str
) -> click.testing.Result:
    collection = write(tmp_path / "c.json", echo_collection(base_url, expected_status))
    environment = write(
        tmp_path / "e.json",
        {"name": "Env", "values": [{"key": "token", "value": "tok-SECRET-1", "type": "secret"}]},
    )
    return invoke(
        "run",
        str(collection),
        *("-e", str(environment), "--color", "off", "-r", "cli,json,junit"),
        *("--reporter-json-export", str(tmp_path / "r" / "report.json")),
        *("--reporter-junit-export", str(tmp_path / "r" / "report.xml")),
        *("--export-environment", str(tmp_path / "r" / "env.json")),
        *extra,
    )


def test_a_passing_run_exits_0_and_writes_reports_and_exports(
    tmp_path: Path, echo_url: str
) -> None:
    result = run_echo(tmp_path, echo_url, 200, "--verbose")
    assert result.exit_code == 0, result.output
    assert "X-Token: ********" in result.stdout
    assert "→ Get" in result.stdout
    assert "  ✓  status" in result.stdout
    assert "tok-SECRET-1" not in result.stdout
    report = json.loads((tmp_path / "r" / "report.json").read_text(encoding="utf-8"))
    assert report["run"]["stats"]["assertions"]["failed"] == 0
    assert report["collection"]["info"]["name"] == "Echo"
    assert "tok-SECRET-1" not in (tmp_path / "r" / "report.json").read_text(encoding="utf-8")
    assert (tmp_path / "r" / "report.xml").read_text(encoding="utf-8").startswith("<?xml")
    exported = json.loads((tmp_path / "r" / "env.json").read_text(encoding="utf-8"))
    values = {v["key"]: v for v in exported["values"]}
    assert values["token"]["value"] == "tok-SECRET-1"
    assert values["token"]["type"] == "secret"
    assert str(values["seen"]["value"]) == "12"


def test_a_failing_run_exits_1_unless_suppressed(tmp_path: Path, echo_url: str) -> None:
    failed = run_echo(tmp_path, echo_url, 201)
    assert failed.exit_code == 1
    assert "1. status" in failed.stdout
    assert "AssertionError" in failed.stdout
    assert failed.stderr == ""
    suppressed = run_echo(tmp_path, echo_url, 201, "-x")
    assert suppressed.exit_code == 0
