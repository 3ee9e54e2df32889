"""Structured input read safely: a bound on nesting, and YAML configuration files.

``nesting_depth`` measures JSON or YAML data without recursion;
``MAX_NESTING_DEPTH`` bounds every file pmrunner reads (collections,
environments, data, monitors, secrets, networks), so that code walking the
data never runs out of stack. Postman's own files stay far below it.

``read_yaml`` reads a configuration file (monitors, secrets, networks) with
safe construction only (no Python objects); every problem, integers too long
to convert and nesting too deep or circular (aliases) included, becomes one
``ConfigurationError`` line naming the file.

``user_path`` expands ``~`` in a path as a shell does, leaving ``~name`` of
an unknown user as written instead of failing.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pmrunner.errors import ConfigurationError

if TYPE_CHECKING:
    import yaml

__all__ = ["MAX_NESTING_DEPTH", "nesting_depth", "read_yaml", "user_path"]

MAX_NESTING_DEPTH = 256


def nesting_depth(value: Any, limit: int) -> int:
    """How deeply lists and dicts nest in ``value`` (a scalar: 0), up to ``limit + 1``.

    Iterative, so that a value too deep for recursion can be measured; a value
    shared in several places (YAML aliases) is measured once, and a value that
    contains itself counts as too deep.
    """
    depths: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        node, children_done = stack.pop()
        if not isinstance(node, dict | list):
            continue
        key, children = id(node), list(node.values() if isinstance(node, dict) else node)
        if children_done:
            on_path.discard(key)
            depths[key] = 1 + max((depths.get(id(child), 0) for child in children), default=0)
            if depths[key] > limit:
                return depths[key]
        elif key in on_path:
            return limit + 1  # it contains itself
        elif key not in depths:
            on_path.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children)
    return depths.get(id(value), 0)


@functools.cache
def _loaders() -> tuple[type[yaml.SafeLoader], type[yaml.SafeLoader]]:
    """The safe YAML loader, and the same refusing a key given twice in one mapping.

    yaml is imported here, at the first file read: a local run, which reads
    JSON only, does not load it (8 ms of CPU).
    """
    import yaml

    # libyaml's parser when it is there: fast, and it limits nesting itself.
    safe: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class UniqueKeyLoader(safe):  # type: ignore[valid-type,misc]
        """A safe YAML loader that refuses a key given twice in one mapping."""

    UniqueKeyLoader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
    )
    return safe, UniqueKeyLoader


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    import yaml

    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:  # a list or mapping as a key
            raise yaml.constructor.ConstructorError(
                None, None, "a list or mapping cannot be a key", key_node.start_mark
            ) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} given twice", key_node.start_mark
            )
        seen.add(key)
    mapping: dict[Any, Any] = loader.construct_mapping(node, deep=True)
    return mapping


def read_yaml(path: Path, *, unique_keys: bool = True, what: str = "YAML") -> Any:
    """Read and parse one YAML (or JSON) file.

    Args:
        path: the file.
        unique_keys: refuse a mapping that gives a key twice.
        what: how errors call the format ("YAML", "YAML or JSON").

    Raises:
        ConfigurationError: naming the file: missing, unreadable, not UTF-8,
            not valid YAML, or nested deeper than ``MAX_NESTING_DEPTH``.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigurationError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{path}: not UTF-8 text") from None
    import yaml

    safe, unique = _loaders()
    loader = unique if unique_keys else safe
    try:
        data = yaml.load(text, Loader=loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid {what}: {_one_line(exc)}") from None
    except RecursionError:
        raise ConfigurationError(f"{path}: nested deeper than {MAX_NESTING_DEPTH} levels") from None
    except ValueError as exc:  # an integer too long to convert
        raise ConfigurationError(f"{path}: not valid {what}: {_one_line(exc)}") from None
    if nesting_depth(data, MAX_NESTING_DEPTH) > MAX_NESTING_DEPTH:
        raise ConfigurationError(
            f"{path}: nested deeper than {MAX_NESTING_DEPTH} levels, or an alias contains itself"
        )
    return data


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def user_path(text: str) -> Path:
    """``text`` as a path, ``~`` and ``~user`` expanded; an unknown user's stays as written."""
    path = Path(text)
    try:
        return path.expanduser()
    except RuntimeError:  # no home directory for that user (or none at all)
        return path
