"""Local values for environment variables: secrets kept out of Postman, and overrides.

A monitor's environment can be completed or changed on the runner's side,
without editing it in Postman. Two places supply values:

A secrets file (YAML or JSON), mapping a monitor uid, or ``"*"`` for every
monitor, to variables::

    "*":
      apiBase: https://orders.internal.example
    orders-health:
      apiKey: s3cr3t
    12345678-0b1c2d3e-....:        # a Postman monitor uid
      clientSecret: another

Environment variables named ``PMRUNNER_VAR_<name>``, for every monitor.
``<name>`` is the variable's name exactly, case included:
``PMRUNNER_VAR_apiKey=s3cr3t`` sets ``apiKey``. Names a shell cannot export
(``api.key``) can still be set by container definitions, or in the file.

When several supply the same variable, the most specific wins: the file's
entry for the monitor, then ``PMRUNNER_VAR_*``, then the file's ``"*"`` entry.

Applied to an environment (:meth:`SecretOverrides.apply`), a value replaces
the variable's value and keeps its type (a ``secret`` stays ``secret``); a
variable the environment lacks is added with type ``secret``, so reports
mask it. Postman vault references (a variable with a ``source`` and no
``value``, or a value containing ``{{vault:name}}``) cannot be resolved by a
runner: they must be supplied here, or the run is refused with an error
naming the monitor and the variable. The file is read once, at start.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmrunner.errors import ConfigurationError
from pmrunner.structured_input import read_yaml
from runtime.loading import VariableFile

__all__ = ["ENV_PREFIX", "EVERY_MONITOR", "SecretOverrides"]

ENV_PREFIX = "PMRUNNER_VAR_"
EVERY_MONITOR = "*"

_VAULT_REFERENCE = re.compile(r"\{\{\s*vault:[^}]+\}\}")


@dataclass(frozen=True)
class SecretOverrides:
    """Variable values supplied on the runner's side; see the module documentation.

    Args:
        by_monitor: monitor uid (or ``"*"``) → variable name → value, as in the file.
        from_environment: variable name → value, from ``PMRUNNER_VAR_*``.

    The values never appear in ``repr()``.
    """

    by_monitor: Mapping[str, Mapping[str, str]] = field(default_factory=dict, repr=False)
    from_environment: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: Path | None, environ: Mapping[str, str]) -> SecretOverrides:
        """Read the secrets file (if any) and the ``PMRUNNER_VAR_*`` variables.

        Args:
            path: the YAML or JSON file; None for none.
            environ: the process environment (``os.environ``).

        Raises:
            ConfigurationError: naming the file and the entry at fault.
        """
        by_monitor = _read_file(path) if path is not None else {}
        from_environment = {
            name[len(ENV_PREFIX) :]: value
            for name, value in environ.items()
            if name.startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX)
        }
        return cls(by_monitor, from_environment)

    def for_monitor(self, monitor_uid: str) -> dict[str, str]:
        """Every override that applies to one monitor, most specific winning."""
        values = dict(self.by_monitor.get(EVERY_MONITOR, {}))
        values.update(self.from_environment)
        values.update(self.by_monitor.get(monitor_uid, {}))
        return values

    def apply(self, monitor_uid: str, environment: VariableFile | None) -> VariableFile | None:
        """The environment with this monitor's overrides applied; the input is not changed.

        Args:
            monitor_uid: whose overrides to use (and to name in errors).
            environment: the monitor's environment; None when it has none, in
                which case the overrides alone form one (None if there are none).

        Raises:
            ConfigurationError: an enabled variable is a Postman vault
                reference and no override supplies it.
        """
        overrides = self.for_monitor(monitor_uid)
        if environment is None:
            if not overrides:
                return None
            environment = VariableFile(name="pmrunner overrides", id=None, values=[])
        values = [_overridden(entry, overrides) for entry in environment.values]
        present = {entry.get("key") for entry in values}
        values.extend(
            {"key": key, "value": value, "type": "secret", "enabled": True}
            for key, value in overrides.items()
            if key not in present
        )
        for entry in values:
            _refuse_vault_reference(monitor_uid, entry)
        return VariableFile(name=environment.name, id=environment.id, values=values)


def _overridden(entry: dict[str, Any], overrides: Mapping[str, str]) -> dict[str, Any]:
    """A copy of one variable entry, with its override (if any) in place."""
    copy = dict(entry)
    key = copy.get("key")
    if isinstance(key, str) and key in overrides:
        from_vault = _is_vault_reference(copy)
        copy.pop("source", None)  # the override resolves the reference
        copy["value"] = overrides[key]
        if from_vault or not copy.get("type"):
            copy["type"] = "secret"
    return copy


def _is_vault_reference(entry: dict[str, Any]) -> bool:
    """A value kept in Postman's vault: a ``source`` and no value, or ``{{vault:...}}``."""
    value = entry.get("value")
    if value is None:
        return entry.get("source") is not None
    return isinstance(value, str) and _VAULT_REFERENCE.search(value) is not None


def _refuse_vault_reference(monitor_uid: str, entry: dict[str, Any]) -> None:
    if entry.get("enabled") is False:
        return
    if _is_vault_reference(entry):
        key = entry.get("key")
        raise ConfigurationError(
            f"monitor {monitor_uid!r}: variable {key!r} is a vault secret; set an override "
            f"in the secrets file (under {monitor_uid!r} or '*') or as {ENV_PREFIX}{key}"
        )


def _read_file(path: Path) -> dict[str, dict[str, str]]:
    """Parse and check the secrets file."""
    data = read_yaml(path, unique_keys=False, what="YAML or JSON")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: expected a mapping of monitor uid (or '*') to variables")
    return {
        str(monitor): _variables(path, str(monitor), variables)
        for monitor, variables in data.items()
    }


def _variables(path: Path, monitor: str, variables: Any) -> dict[str, str]:
    if variables is None:
        return {}
    if not isinstance(variables, dict):
        raise ConfigurationError(f"{path}: {monitor!r}: expected a mapping of variable to value")
    checked: dict[str, str] = {}
    for name, value in variables.items():
        if isinstance(value, (dict, list)) or value is None:
            raise ConfigurationError(
                f"{path}: {monitor!r}: variable {name!r} must be text, a number or a boolean"
            )
        checked[str(name)] = _as_text(value)
    return checked


def _as_text(value: Any) -> str:
    """Variables are text in Postman environments; booleans as JavaScript writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
