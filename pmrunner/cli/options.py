"""``pmrunner run`` options: checked and converted into ``RunSettings``.

Every check raises ``InputError`` naming the option, so the command prints
one ``error: ...`` line instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from pmrunner.errors import InputError
from pmrunner.structured_input import user_path
from runtime.options import DEFAULT_MAX_RESPONSE_BYTES, RunOptions, Timeouts, TLSOptions
from runtime.reporters import CliSections

COLOR_MODES = ("on", "off", "auto")
BAIL_MODIFIERS = ("folder", "failure")


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
        html_export: the HTML report's path (None: the default path).
        silent: print nothing (no cli report), as newman's ``--silent``.
        cli_sections: the parts of the cli report to print (``--reporter-cli-no-*``).
        cookie_jar: a cookie jar file (tough-cookie's JSON) to start the run with.
        export_cookie_jar: where to write the final cookie jar.
        export_collection: where to write the collection with its final variables.
        color: "on", "off" or "auto".
        unicode: False to draw the cli report with ASCII only.
        verbose: headers and bodies in the cli report.
        suppress_exit_code: exit 0 even when the run failed.
        postman_api_key: fetch UIDs from the Postman API with this key.
        options: what shapes the run itself.
        distributed: send the run to the workers through the broker instead of
            running it in this process.
        wait_seconds: how long a distributed run is waited for (None: a default
            derived from the run's timeout or the run deadline).
        resend_unsafe: for a distributed run, whether a sent POST, PUT, PATCH
            or DELETE whose worker was lost is sent again (None: the runner's
            ``PMRUNNER_RESEND_UNSAFE``).
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
    html_export: Path | None = None
    silent: bool = False
    cli_sections: CliSections = field(default_factory=CliSections)
    cookie_jar: Path | None = None
    export_cookie_jar: Path | None = None
    export_collection: Path | None = None
    color: str = "auto"
    unicode: bool = True
    verbose: bool = False
    suppress_exit_code: bool = False
    postman_api_key: str | None = field(default=None, repr=False)
    options: RunOptions = field(default_factory=RunOptions)
    distributed: bool = False
    wait_seconds: float | None = None
    resend_unsafe: bool | None = None


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


def positive_seconds(option: str, text: str | None) -> float | None:
    """``text`` as a number of seconds above zero; None stays None."""
    if text is None:
        return None
    try:
        value = float(str(text).strip())
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise InputError(f"{option} must be a number of seconds above 0, not {text!r}")
    return value


def existing_file(option: str, text: str | None) -> Path | None:
    """``text`` as the path of a file that exists; None stays None."""
    if text is None:
        return None
    path = user_path(text)
    if not path.is_file():
        raise InputError(f"{option}: no such file {text!r}")
    return path


def existing_folder(option: str, text: str | None) -> Path:
    """``text`` as an existing folder, resolved; None means the current folder."""
    if text is None:
        return Path.cwd()
    path = user_path(text)
    if not path.is_dir():
        raise InputError(f"{option}: no such folder {text!r}")
    return path.resolve()


def color_mode(text: str) -> str:
    """``--color``'s value, lower case; one of ``COLOR_MODES``."""
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
    return user_path(text) if text else None


def run_options(params: Mapping[str, Any]) -> RunOptions:
    """The ``RunOptions`` the run command's parameters ask for, under this egress policy."""
    from tasks.egress import process_policy
    from worker.settings import Settings

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
        max_response_bytes=_max_response_bytes(params.get("max_response_size")),
        egress=process_policy(Settings.from_env()),
    )


def _max_response_bytes(text: str | None) -> int:
    limit = whole_number("--max-response-size", text, minimum=0)
    return DEFAULT_MAX_RESPONSE_BYTES if limit is None else limit


def distribution(params: Mapping[str, Any]) -> tuple[bool, float | None]:
    """``--distributed`` and ``--wait``; a wait without a distributed run is a mistake."""
    distributed = bool(params.get("distributed"))
    wait = positive_seconds("--wait", params.get("wait"))
    if wait is not None and not distributed:
        raise InputError("--wait applies to distributed runs only; add --distributed")
    if params.get("resend_unsafe") is not None and not distributed:
        raise InputError("--[no-]resend-unsafe applies to distributed runs only; add --distributed")
    return distributed, wait


LOCAL_ONLY_OPTIONS = ("cookie_jar", "export_cookie_jar", "export_collection")


def local_only(params: Mapping[str, Any], distributed: bool) -> None:
    """The cookie jar and collection options need the run's state here: not with --distributed."""
    for name in LOCAL_ONLY_OPTIONS:
        if distributed and params.get(name):
            option = "--" + name.replace("_", "-")
            raise InputError(f"{option} applies to runs in this process; drop --distributed")


def settings_from_params(params: Mapping[str, Any]) -> RunSettings:
    """Check and convert the run command's parameters; ``InputError`` names a bad option."""
    from runtime.reporters import parse_reporter_names

    color = "off" if params["no_color"] else color_mode(params["color"])
    distributed, wait = distribution(params)
    local_only(params, distributed)
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
        html_export=optional_path(params["reporter_html_export"]),
        silent=params["silent"],
        cli_sections=CliSections(
            banner=not params["reporter_cli_no_banner"],
            summary=not params["reporter_cli_no_summary"],
            failures=not params["reporter_cli_no_failures"],
        ),
        cookie_jar=existing_file("--cookie-jar", params["cookie_jar"]),
        export_cookie_jar=optional_path(params["export_cookie_jar"]),
        export_collection=optional_path(params["export_collection"]),
        color=color,
        unicode=not params["disable_unicode"],
        verbose=params["verbose"],
        suppress_exit_code=params["suppress_exit_code"],
        postman_api_key=params["postman_api_key"] or None,
        options=run_options(params),
        distributed=distributed,
        wait_seconds=wait,
        resend_unsafe=params.get("resend_unsafe"),
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
