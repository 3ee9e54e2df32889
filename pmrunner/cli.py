"""The ``pmrunner`` command line.

``pmrunner run COLLECTION`` is a drop-in for ``newman run``: the same options,
the same cli, JSON and JUnit reports, the same exit codes (1 when the run
failed, unless ``-x``). Bad input prints one ``error: ...`` line and exits 1;
a usage error (an unknown option, a missing argument) keeps click's exit 2.
"""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TextIO

import click

from pmrunner import __version__
from pmrunner.errors import InputError, PmrunnerError
from runtime.options import RunOptions, Timeouts, TLSOptions
from runtime.results import JSON, iso, utc_now

if TYPE_CHECKING:
    from runtime.loading import VariableFile
    from runtime.model import Collection
    from runtime.results import Run

COLOR_MODES = ("on", "off", "auto")
BAIL_MODIFIERS = ("folder", "failure")
POSTMAN_API_URL_ENV = "PMRUNNER_POSTMAN_API_URL"  # another API root, e.g. behind a proxy
# A Postman uid (``<owner>-<uuid>``) or id (``<uuid>``); anything else is a file name.
POSTMAN_UID = re.compile(r"(\d+-)?[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


class CommandError(click.ClickException):
    """Bad input: printed as one ``error: ...`` line, exit code 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


# --- settings --------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSettings:
    """Everything ``pmrunner run`` was asked to do, checked and converted.

    Parameters:
        collection: a collection file, an http(s) URL, or a Postman UID (with an API key).
        environment: likewise for ``-e``; None when not given.
        globals: a globals file or URL (``-g``).
        iteration_data: a JSON or CSV data file (``-d``).
        env_vars: ``--env-var`` pairs, applied over the environment in order.
        global_vars: ``--global-var`` pairs, applied over the globals in order.
        export_environment: where to write the final environment.
        export_globals: where to write the final globals.
        reporters: reporter names, in order.
        json_export: the JSON report's path (None: the default path).
        junit_export: the JUnit report's path (None: the default path).
        color: "on", "off" or "auto".
        unicode: False to draw the cli report with ASCII only.
        verbose: headers and bodies in the cli report.
        suppress_exit_code: exit 0 even when the run failed.
        postman_api_key: fetch UIDs from the Postman API with this key.
        options: what shapes the run itself.
    """

    collection: str
    environment: str | None = None
    globals: str | None = None
    iteration_data: Path | None = None
    env_vars: tuple[tuple[str, str], ...] = ()
    global_vars: tuple[tuple[str, str], ...] = ()
    export_environment: Path | None = None
    export_globals: Path | None = None
    reporters: tuple[str, ...] = ("cli",)
    json_export: Path | None = None
    junit_export: Path | None = None
    color: str = "auto"
    unicode: bool = True
    verbose: bool = False
    suppress_exit_code: bool = False
    postman_api_key: str | None = field(default=None, repr=False)
    options: RunOptions = field(default_factory=RunOptions)


def whole_number(option: str, text: str | None, *, minimum: int) -> int | None:
    """``text`` as an int of at least ``minimum``; None stays None.

    Raises ``InputError`` naming the option for anything else.
    """
    if text is None:
        return None
    try:
        value = int(str(text).strip())
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise InputError(f"{option} must be a whole number of at least {minimum}, not {text!r}")
    return value


def existing_file(option: str, text: str | None) -> Path | None:
    if text is None:
        return None
    path = Path(text).expanduser()
    if not path.is_file():
        raise InputError(f"{option}: no such file {text!r}")
    return path


def existing_folder(option: str, text: str | None) -> Path:
    if text is None:
        return Path.cwd()
    path = Path(text).expanduser()
    if not path.is_dir():
        raise InputError(f"{option}: no such folder {text!r}")
    return path.resolve()


def color_mode(text: str) -> str:
    mode = text.strip().lower()
    if mode not in COLOR_MODES:
        raise InputError(f"--color must be one of on, off, auto, not {text!r}")
    return mode


def bail_enabled(text: str | None) -> bool:
    """Whether ``--bail [folder|failure]`` stops the run at the first failure.

    newman's ``folder`` modifier stops on a folder that does not exist, which
    is always an error here; a bare ``--bail`` means both.
    """
    if text is None:
        return False
    modifiers = {part.strip().lower() for part in text.split(",") if part.strip()}
    unknown = modifiers - set(BAIL_MODIFIERS)
    if unknown or not modifiers:
        raise InputError(f"--bail accepts folder and failure, not {text!r}")
    return "failure" in modifiers


def key_value_pairs(option: str, texts: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``key=value`` options as pairs; ``InputError`` names the option for a bad one."""
    if not texts:
        return ()
    from runtime.loading import parse_key_value

    return tuple(parse_key_value(option, text) for text in texts)


def optional_path(text: str | None) -> Path | None:
    return Path(text).expanduser() if text else None


def run_options(params: Mapping[str, Any]) -> RunOptions:
    """The ``RunOptions`` the run command's parameters ask for."""
    tls = TLSOptions(
        verify=not params["insecure"],
        extra_ca_certs=existing_file("--ssl-extra-ca-certs", params["ssl_extra_ca_certs"]),
        client_cert=existing_file("--ssl-client-cert", params["ssl_client_cert"]),
        client_key=existing_file("--ssl-client-key", params["ssl_client_key"]),
        client_passphrase=params["ssl_client_passphrase"],
    )
    timeouts = Timeouts(
        request=whole_number("--timeout-request", params["timeout_request"], minimum=0) or 0,
        script=whole_number("--timeout-script", params["timeout_script"], minimum=0) or 0,
        run=whole_number("--timeout", params["timeout"], minimum=0) or 0,
    )
    return RunOptions(
        iterations=whole_number("--iteration-count", params["iteration_count"], minimum=1),
        folders=tuple(params["folder"]),
        delay_request_ms=whole_number("--delay-request", params["delay_request"], minimum=0) or 0,
        bail=bail_enabled(params["bail"]),
        follow_redirects=not params["ignore_redirects"],
        timeouts=timeouts,
        tls=tls,
        working_dir=existing_folder("--working-dir", params["working_dir"]),
    )


def settings_from_params(params: Mapping[str, Any]) -> RunSettings:
    """Check and convert the run command's parameters; ``InputError`` names a bad option."""
    from runtime.reporters import parse_reporter_names

    color = "off" if params["no_color"] else color_mode(params["color"])
    return RunSettings(
        collection=params["collection"],
        environment=params["environment"],
        globals=params["globals"],
        iteration_data=optional_path(params["iteration_data"]),
        env_vars=key_value_pairs("--env-var", params["env_var"]),
        global_vars=key_value_pairs("--global-var", params["global_var"]),
        export_environment=optional_path(params["export_environment"]),
        export_globals=optional_path(params["export_globals"]),
        reporters=tuple(parse_reporter_names(params["reporters"])),
        json_export=optional_path(params["reporter_json_export"]),
        junit_export=optional_path(params["reporter_junit_export"]),
        color=color,
        unicode=not params["disable_unicode"],
        verbose=params["verbose"],
        suppress_exit_code=params["suppress_exit_code"],
        postman_api_key=params["postman_api_key"] or None,
        options=run_options(params),
    )


def normalise_bail(args: Sequence[str]) -> list[str]:
    """Make newman's optional-value ``--bail [folder|failure]`` explicit.

    ``--bail failure`` becomes ``--bail=failure``; a bare ``--bail`` (followed
    by anything else, such as the collection) becomes ``--bail=folder,failure``.
    """
    result: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            result.extend(args[index:])
            break
        if arg == "--bail":
            following = args[index + 1] if index + 1 < len(args) else ""
            parts = {part.strip().lower() for part in following.split(",")}
            if following and parts <= set(BAIL_MODIFIERS):
                result.append(f"--bail={following}")
                index += 2
                continue
            result.append("--bail=folder,failure")
        else:
            result.append(arg)
        index += 1
    return result


class RunCommand(click.Command):
    """The run command, reading newman's ``--bail`` with or without a value."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, normalise_bail(args))


# --- inputs ----------------------------------------------------------------------------


def fetch_json_url(url: str, what: str) -> JSON:
    """GET a JSON document (a collection, an environment) from an http(s) URL."""
    import requests

    shown = url.split("?", 1)[0]  # a query may hold an API key
    try:
        response = requests.get(url, timeout=30)
    except requests.RequestException as error:
        raise InputError(f"cannot fetch {what} from {shown}: {error.__class__.__name__}") from None
    if response.status_code >= 400:
        raise InputError(f"cannot fetch {what} from {shown}: HTTP {response.status_code}")
    try:
        data = json.loads(response.content)
    except ValueError:
        raise InputError(f"{what} at {shown} is not JSON") from None
    if not isinstance(data, dict):
        raise InputError(f"{what} at {shown} is not a JSON object")
    return data


def postman_client(api_key: str) -> Any:
    """A Postman API client; fetching by UID needs the scheduler package."""
    try:
        from scheduler.postman import PostmanClient
    except ImportError:
        raise InputError(
            "fetching by UID with --postman-api-key needs the scheduler.postman module,"
            " which is not installed"
        ) from None
    base_url = os.environ.get(POSTMAN_API_URL_ENV)
    return PostmanClient(api_key=api_key, base_url=base_url) if base_url else PostmanClient(api_key)


def source_of(text: str, what: str, api_key: str | None) -> Path | JSON:
    """Where an input comes from: a file, a URL's JSON, or the Postman API by UID."""
    if text.startswith(("http://", "https://")):
        return fetch_json_url(text, what)
    path = Path(text).expanduser()
    if path.exists() or not api_key or not POSTMAN_UID.fullmatch(text):
        return path  # the loader names a missing file
    with postman_client(api_key) as client:
        fetched: JSON = (
            client.get_collection(text) if what == "collection" else client.get_environment(text)
        )
    return fetched


def load_variables(text: str | None, what: str, api_key: str | None) -> VariableFile | None:
    """An environment or globals from a file, a URL or (environments) a Postman UID."""
    from runtime.loading import load_environment, load_globals, variable_file_from_json

    if text is None:
        return None
    source = source_of(text, what, api_key if what == "environment" else None)
    if isinstance(source, dict):
        label = f"{what} {text.split('?', 1)[0]}"
        return variable_file_from_json(source, label=label)
    return load_environment(source) if what == "environment" else load_globals(source)


def apply_overrides(
    variables: VariableFile | None, pairs: Sequence[tuple[str, str]]
) -> VariableFile | None:
    """Set ``--env-var``/``--global-var`` values over the loaded ones (enabled, in order)."""
    from runtime.loading import VariableFile

    if not pairs:
        return variables
    result = variables or VariableFile(name=None, id=None, values=[])
    for key, value in pairs:
        existing = [v for v in result.values if v.get("key") == key]
        for variable in existing:
            variable["value"] = value
            variable["enabled"] = True
        if not existing:
            result.values.append({"key": key, "value": value, "type": "default", "enabled": True})
    return result


@dataclass
class RunInputs:
    """What a run reads: the collection, variables and data rows."""

    collection: Collection
    environment: VariableFile | None
    globals: VariableFile | None
    iteration_data: list[dict[str, Any]] | None


def load_inputs(settings: RunSettings) -> RunInputs:
    from runtime.loading import load_collection, load_iteration_data

    source = source_of(settings.collection, "collection", settings.postman_api_key)
    collection = load_collection(source)
    environment = load_variables(settings.environment, "environment", settings.postman_api_key)
    globals_ = load_variables(settings.globals, "globals", None)
    data = load_iteration_data(settings.iteration_data) if settings.iteration_data else None
    return RunInputs(
        collection=collection,
        environment=apply_overrides(environment, settings.env_vars),
        globals=apply_overrides(globals_, settings.global_vars),
        iteration_data=data,
    )


# --- outputs ---------------------------------------------------------------------------


def exported_variable(variable: JSON, original_types: Mapping[str, str]) -> JSON:
    """One variable of an export; a type the input file gave (``secret``) is kept.

    Scripts' scopes report every variable as ``any``; writing that back would
    turn a secret into a plain variable in the next run's input.
    """
    key = variable.get("key")
    kind = variable.get("type")
    if kind in (None, "", "any") and isinstance(key, str):
        kind = original_types.get(key, kind)
    return {
        "key": key,
        "value": variable.get("value"),
        "type": kind or "default",
        "enabled": variable.get("enabled", True) is not False,
    }


def variable_export(scope: str, source: VariableFile | None, values: list[JSON]) -> JSON:
    """Postman's export format of an environment or globals.

    Parameters:
        scope: "environment" or "globals".
        source: the variables as loaded (for the id, name and types), or None.
        values: the final variables of the run.
    """
    name = source.name if source and source.name else scope
    original_types = {
        str(v["key"]): str(v["type"]) for v in (source.values if source else []) if v.get("type")
    }
    return {
        "id": (source.id if source and source.id else None) or str(uuid.uuid4()),
        "name": name,
        "values": [exported_variable(v, original_types) for v in values if isinstance(v, dict)],
        "_postman_variable_scope": scope,
        "_postman_exported_at": iso(utc_now()),
        "_postman_exported_using": f"pmrunner/{__version__}",
    }


def write_json(path: Path, document: JSON, option: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(document, indent=2, ensure_ascii=False, default=str)
        path.write_text(text + "\n", encoding="utf-8")
    except OSError as error:
        reason = error.strerror or str(error)
        raise InputError(f"{option}: cannot write {str(path)!r}: {reason}") from None


def write_exports(settings: RunSettings, inputs: RunInputs, run: Run) -> None:
    """``--export-environment`` and ``--export-globals``, with their real values.

    Exports are variable files meant to be fed to the next run, so secret
    values are kept (Postman's own exports keep them too); reports mask them.
    """
    if settings.export_environment:
        document = variable_export("environment", inputs.environment, run.environment)
        write_json(settings.export_environment, document, "--export-environment")
    if settings.export_globals:
        document = variable_export("globals", inputs.globals, run.globals)
        write_json(settings.export_globals, document, "--export-globals")


def input_secrets(settings: RunSettings, inputs: RunInputs) -> set[str]:
    """Values reports must mask from the start: secret variables, passphrase, API key."""
    from runtime.masking import secret_variable_values

    variables = [*(inputs.environment.values if inputs.environment else [])]
    variables += inputs.globals.values if inputs.globals else []
    found = secret_variable_values(variables)
    found.update(v for v in (settings.options.tls.client_passphrase, settings.postman_api_key) if v)
    return found


def use_color(mode: str, stream: TextIO) -> bool:
    """``auto`` colours a terminal, unless ``NO_COLOR`` is set or the terminal is dumb."""
    if mode != "auto":
        return mode == "on"
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


# --- the run ---------------------------------------------------------------------------


def execute(settings: RunSettings, stream: TextIO) -> Run:
    """Load the inputs, run the collection in this process with the reporters, write exports.

    A distributed mode would replace ``run_collection`` here by a dispatch to
    the workers; inputs, reporters and exports stay the same.
    """
    from runtime.events import Listeners
    from runtime.reporters import build_reporters
    from runtime.runner import run_collection

    inputs = load_inputs(settings)
    reporters = build_reporters(
        list(settings.reporters),
        json_path=settings.json_export,
        junit_path=settings.junit_export,
        stream=stream,
        color=use_color(settings.color, stream),
        verbose=settings.verbose,
        collection_name=inputs.collection.name,
        collection=inputs.collection,
        unicode=None if settings.unicode else False,
        secrets=input_secrets(settings, inputs),
    )
    run = run_collection(
        inputs.collection,
        environment=inputs.environment,
        globals=inputs.globals,
        iteration_data=inputs.iteration_data,
        options=settings.options,
        listener=Listeners(reporters),
    )
    write_exports(settings, inputs, run)
    return run


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="pmrunner")
def pmrunner() -> None:
    """pmrunner: a self-hosted runner for Postman API monitors."""


@pmrunner.command("run", cls=RunCommand)
@click.argument("collection")
@click.option("-e", "--environment", metavar="SOURCE", help="Environment file, URL or UID.")
@click.option("-g", "--globals", "globals", metavar="SOURCE", help="Globals file or URL.")
@click.option("-d", "--iteration-data", metavar="FILE", help="Iteration data (JSON or CSV).")
@click.option("-n", "--iteration-count", metavar="N", help="Number of iterations.")
@click.option("--folder", multiple=True, metavar="NAME", help="Run only this folder or request.")
@click.option("--env-var", multiple=True, metavar="KEY=VALUE", help="Set an environment variable.")
@click.option("--global-var", multiple=True, metavar="KEY=VALUE", help="Set a global variable.")
@click.option("--export-environment", metavar="FILE", help="Write the final environment here.")
@click.option("--export-globals", metavar="FILE", help="Write the final globals here.")
@click.option("--delay-request", metavar="MS", help="Pause between requests.")
@click.option("--timeout", metavar="MS", help="Time limit of the whole run (0: none).")
@click.option("--timeout-request", metavar="MS", help="Time limit of each request (0: none).")
@click.option("--timeout-script", metavar="MS", help="Time limit of each script (0: none).")
@click.option("-k", "--insecure", is_flag=True, help="Do not verify TLS certificates.")
@click.option("--ignore-redirects", is_flag=True, help="Do not follow redirects.")
@click.option("--bail", metavar="[folder|failure]", help="Stop the run at the first failure.")
@click.option("-x", "--suppress-exit-code", is_flag=True, help="Exit 0 even when the run fails.")
@click.option("--working-dir", metavar="DIR", help="Where file references are resolved.")
@click.option("--ssl-extra-ca-certs", metavar="FILE", help="Extra trusted CA certificates (PEM).")
@click.option("--ssl-client-cert", metavar="FILE", help="Client certificate (PEM).")
@click.option("--ssl-client-key", metavar="FILE", help="Client certificate's key (PEM).")
@click.option("--ssl-client-passphrase", metavar="TEXT", help="Passphrase of the client key.")
@click.option(
    "-r", "--reporters", multiple=True, default=("cli",), metavar="NAMES", help="cli,json,junit"
)
@click.option("--reporter-json-export", metavar="PATH", help="Path of the JSON report.")
@click.option("--reporter-junit-export", metavar="PATH", help="Path of the JUnit report.")
@click.option("--color", default="auto", metavar="on|off|auto", help="Coloured output.")
@click.option("--no-color", is_flag=True, help="Same as --color off.")
@click.option("--disable-unicode", is_flag=True, help="Draw the report with ASCII only.")
@click.option("--verbose", is_flag=True, help="Show headers and bodies of requests and responses.")
@click.option(
    "--postman-api-key",
    metavar="KEY",
    envvar=["PMRUNNER_POSTMAN_API_KEY", "POSTMAN_API_KEY"],
    help="Postman API key: COLLECTION and -e may then be UIDs.",
)
def run_command(**params: Any) -> None:
    """Run a Postman collection, as newman run does."""
    stream = sys.stdout  # click's test runner swaps it, so read it at call time
    try:
        settings = settings_from_params(params)
        run = execute(settings, stream)
    except PmrunnerError as error:
        raise CommandError(str(error)) from None
    if run.failed and not settings.suppress_exit_code:
        raise click.exceptions.Exit(1)


def parse_run_options(argv: Sequence[str]) -> RunSettings:
    """The settings ``pmrunner run <argv>`` would use, without running anything.

    Raises click's ``UsageError`` for a usage error and ``InputError`` for a bad value.
    """
    with run_command.make_context("run", list(argv)) as context:
        return settings_from_params(context.params)


def main() -> None:
    """The ``pmrunner`` console script."""
    pmrunner(prog_name="pmrunner")


if __name__ == "__main__":
    main()
