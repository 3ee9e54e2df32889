"""Variable scopes and ``{{name}}`` substitution, as Postman does them.

A :class:`VariableScope` holds one list of Postman variable entries (an
environment, the globals, the collection variables, or the local variables
that scripts set). A :class:`VariableResolver` looks names up through the
scopes in Postman's order of precedence and substitutes ``{{name}}`` in text.

Substitution follows postman-collection's substitutor:

* a token is ``{{`` + a name without braces + ``}}``; each round replaces every
  innermost token, and rounds repeat while something changes, at most
  :data:`MAX_SUBSTITUTION_ROUNDS` times. So a value holding ``{{other}}`` is
  resolved in turn, and ``{{user_{{id}}}}`` becomes ``{{user_7}}`` and then
  that variable's value. A variable that refers to itself stops at the limit.
* names no scope defines stay exactly as written.
* ``{{$name}}`` of a dynamic variable gets a fresh value per occurrence,
  unless a variable of that exact name exists.
* values that are not strings are printed as JavaScript's ``String()`` would:
  ``True`` → ``"true"``, ``1.0`` → ``"1"``, ``[1, 2]`` → ``"1,2"``, a dict →
  ``"[object Object]"``. A value of ``None`` (JSON ``null``) is printed
  ``"null"``, as postman-collection does since it treats null as a valid
  JSON value; an entry with no ``value`` at all becomes ``""``.
"""

from __future__ import annotations

import builtins
import copy
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from runtime.dynamic import dynamic_value

__all__ = [
    "MAX_SUBSTITUTION_ROUNDS",
    "VariableResolver",
    "VariableScope",
    "js_number_string",
    "js_string",
]

MAX_SUBSTITUTION_ROUNDS = 19
"""Postman gives up substituting after this many rounds."""

_TOKEN = re.compile(r"\{\{([^{}]*)\}\}")
_ENTRY_WITHOUT_VALUE = object()
_SECRET_TYPE = "secret"

# Run once in every script context, before its first script: the sandbox's
# scopes drop a type they do not know, "secret" among them, but keep a
# ``secret`` flag: ``pm.environment.set(name, value, "secret")`` (or
# ``{type: "secret"}``) also sets the flag, which ``secret_flag_type`` reads.
# It wraps ``set`` on the scopes' prototype (postman-collection's
# VariableScope), which every scope of every later script shares.
SECRET_TYPE_SHIM = (
    ";(function (scopes) { var wrapped = [];"
    " scopes.forEach(function (scope) {"
    " var proto = scope ? Object.getPrototypeOf(scope) : null;"
    " if (!proto || typeof proto.set !== 'function' || wrapped.indexOf(proto) >= 0) { return; }"
    " wrapped.push(proto);"
    " var set = proto.set;"
    " proto.set = function (key, value, type) {"
    " var secret = type === 'secret' || (type && type.type === 'secret');"
    " return set.call(this, key, value, secret ? { type: 'secret', secret: true } : type); };"
    " }); })([pm.environment, pm.globals, pm.collectionVariables, pm.variables]);"
)


def secret_flag_type(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry the sandbox returned, typed ``secret`` again when a script set it so.

    Parameters:
        entry: a variable entry from the sandbox (``{key, value, type, secret?}``).
    """
    if entry.get("secret") is not True:
        return entry
    kept = {key: value for key, value in entry.items() if key != "secret"}
    kept["type"] = _SECRET_TYPE
    return kept


def js_number_string(number: float) -> str:
    """A float printed as JavaScript's ``Number.prototype.toString`` prints it.

    ``1.0`` → ``"1"``, ``1e21`` → ``"1e+21"``, ``1e-7`` → ``"1e-7"``,
    ``0.000001`` → ``"0.000001"``. Digits are the shortest that round-trip,
    which Python's ``repr`` and JavaScript agree on.
    """
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"
    sign = "-" if number < 0 else ""
    _, digit_tuple, exponent = Decimal(repr(abs(number))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    count = len(digits)
    point = int(exponent) + count  # the value is 0.<digits> * 10**point
    if count <= point <= 21:
        return sign + digits + "0" * (point - count)
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * -point + digits
    power = point - 1
    mantissa = digits[0] + ("." + digits[1:] if count > 1 else "")
    return f"{sign}{mantissa}e{'+' if power >= 0 else '-'}{abs(power)}"


def js_string(value: Any) -> str:
    """``value`` as JavaScript's ``String(value)`` would print it.

    Lists join their items with ``,`` (null items print empty, as in
    ``Array.prototype.join``); mappings print ``[object Object]``.
    """
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return js_number_string(value)
    if isinstance(value, list | tuple):
        return ",".join("" if item is None else js_string(item) for item in value)
    if isinstance(value, Mapping):
        return "[object Object]"
    return str(value)


def _json_safe(value: Any) -> Any:
    """A deep copy of ``value`` that ``json.dumps`` accepts (as ``JSON.stringify`` would)."""
    if isinstance(value, str | bool | int) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return str(value)


def _is_enabled(entry: Mapping[str, Any]) -> bool:
    """Environments say ``enabled: false``; collection variables say ``disabled: true``."""
    return entry.get("enabled") is not False and entry.get("disabled") is not True


class VariableScope:
    """One list of Postman variable entries ``{key, value, type?, enabled?, ...}``.

    Entries keep their order, their extra fields and the disabled ones, so the
    list can be written back (``to_list``) as Postman would export it. Lookups
    ignore disabled entries, and among entries with the same key the last
    enabled one wins, as in postman-collection.

    Args:
        values: the entries; each is copied, entries that are not mappings
            are skipped.
        name: a label for the scope (the environment's name, for example).
    """

    def __init__(
        self, values: Iterable[Mapping[str, Any]] | None = None, *, name: str | None = None
    ) -> None:
        self.name = name
        self._entries: list[dict[str, Any]] = [
            copy.deepcopy(dict(entry)) for entry in values or () if isinstance(entry, Mapping)
        ]
        self._index: dict[str, dict[str, Any]] | None = None

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], *, name: str | None = None) -> VariableScope:
        """A scope from a plain ``{key: value}`` object (an iteration-data row, say)."""
        return cls(({"key": key, "value": value} for key, value in mapping.items()), name=name)

    def _winners(self) -> dict[str, dict[str, Any]]:
        """key → the entry that answers for it; rebuilt lazily after changes."""
        if self._index is None:
            index: dict[str, dict[str, Any]] = {}
            for entry in self._entries:
                key = entry.get("key")
                if key is not None and _is_enabled(entry):
                    index[str(key)] = entry
            self._index = index
        return self._index

    def entry(self, key: str) -> dict[str, Any] | None:
        """The enabled entry that answers for ``key`` (the live dict), or None."""
        return self._winners().get(key)

    def has(self, key: str) -> bool:
        """Whether an enabled entry has this key."""
        return key in self._winners()

    def get(self, key: str) -> Any | None:
        """The value of ``key``; None when no enabled entry has it."""
        found = self._winners().get(key)
        return None if found is None else found.get("value")

    def set(self, key: str, value: Any, type: str | None = None) -> None:
        """Set ``key``: update the entry that answers for it, or append a new one.

        Args:
            key: the variable name.
            value: its new value.
            type: a Postman variable type ("string", "secret", ...); None keeps
                the entry's type (a new entry gets "any", as Postman gives it).
        """
        found = self._winners().get(key)
        if found is not None:
            found["value"] = value
            if type is not None:
                found["type"] = type
            return
        self._entries.append({"key": key, "value": value, "type": type or "any"})
        self._index = None

    def unset(self, key: str) -> None:
        """Remove every enabled entry with this key; disabled ones stay, as in Postman."""
        self._entries = [
            entry for entry in self._entries if not (entry.get("key") == key and _is_enabled(entry))
        ]
        self._index = None

    def clear(self) -> None:
        """Remove every entry, disabled ones included."""
        self._entries = []
        self._index = None

    def to_list(self) -> list[dict[str, Any]]:
        """The entries in order, disabled ones and extra fields kept, safe for ``json.dumps``."""
        return [_json_safe(entry) for entry in self._entries]

    def to_dict(self) -> dict[str, Any]:
        """``{key: value}`` of the entries that answer lookups (Postman's ``toObject``)."""
        return {key: entry.get("value") for key, entry in self._winners().items()}

    # ``builtins.set``: inside this class body, ``set`` names the method above.
    def secret_values(self) -> builtins.set[str]:
        """The values of entries typed "secret", as they would appear in requests."""
        secrets: builtins.set[str] = builtins.set()
        for entry in self._entries:
            if str(entry.get("type") or "").lower() != _SECRET_TYPE:
                continue
            value = entry.get("value")
            text = "" if value is None else js_string(value)
            if text:
                secrets.add(text)
        return secrets

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._entries)

    def __repr__(self) -> str:
        return f"VariableScope(name={self.name!r}, entries={len(self._entries)})"


class VariableResolver:
    """Looks names up and substitutes ``{{name}}`` through the scopes of a run.

    Precedence, highest first, as in Postman: local variables (set by
    ``pm.variables.set``), the iteration-data row, the environment, the
    collection variables, the globals. Every scope may be changed in place
    while the resolver is in use; each lookup sees the current values.

    Args:
        local: variables scripts set for the current request.
        data: the current iteration-data row (``{column: value}``).
        environment: the environment.
        collection: the collection variables.
        globals: the global variables.
    """

    def __init__(
        self,
        *,
        local: VariableScope | None = None,
        data: Mapping[str, Any] | None = None,
        environment: VariableScope | None = None,
        collection: VariableScope | None = None,
        globals: VariableScope | None = None,
    ) -> None:
        self.local = local if local is not None else VariableScope(name="local")
        self.data: Mapping[str, Any] = data if data is not None else {}
        self.environment = environment if environment is not None else VariableScope()
        self.collection = collection if collection is not None else VariableScope()
        self.globals = globals if globals is not None else VariableScope(name="globals")

    def _find(self, name: str) -> Any:
        """The value that answers for ``name`` (``_ENTRY_WITHOUT_VALUE`` for an entry without one).

        Raises:
            KeyError: no scope defines ``name``.
        """
        found = self.local.entry(name)
        if found is not None:
            return found.get("value", _ENTRY_WITHOUT_VALUE)
        if name in self.data:
            return self.data[name]
        for scope in (self.environment, self.collection, self.globals):
            found = scope.entry(name)
            if found is not None:
                return found.get("value", _ENTRY_WITHOUT_VALUE)
        raise KeyError(name)

    def has(self, name: str) -> bool:
        """Whether any scope defines ``name``."""
        try:
            self._find(name)
        except KeyError:
            return False
        return True

    def lookup(self, name: str) -> Any | None:
        """The value of ``name`` from the scope with the highest precedence; None if none."""
        try:
            value = self._find(name)
        except KeyError:
            return None
        return None if value is _ENTRY_WITHOUT_VALUE else value

    def _replace_token(self, match: re.Match[str]) -> str:
        name = match.group(1)
        try:
            value = self._find(name)
        except KeyError:
            if name.startswith("$"):
                generated = dynamic_value(name)
                if generated is not None:
                    return generated
            return match.group(0)
        return "" if value is _ENTRY_WITHOUT_VALUE else js_string(value)

    def resolve(self, text: str) -> str:
        """``text`` with its ``{{name}}`` tokens substituted (see the module's notes).

        Args:
            text: a URL, header, body or any other string of a request.

        Returns:
            The substituted text; unknown names are left as written.
        """
        if "{{" not in text:
            return text
        for _ in range(MAX_SUBSTITUTION_ROUNDS):
            substituted = _TOKEN.sub(self._replace_token, text)
            if substituted == text:
                break  # a fixed point: further rounds would change nothing
            text = substituted
            if "{{" not in text:
                break
        return text

    def resolve_deep(self, value: Any) -> Any:
        """A copy of ``value`` with every string inside dicts, lists and tuples resolved.

        Dict keys stay as they are; other values are returned unchanged.
        """
        if isinstance(value, str):
            return self.resolve(value)
        if isinstance(value, Mapping):
            return {key: self.resolve_deep(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve_deep(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self.resolve_deep(item) for item in value)
        return value

    def secret_values(self) -> set[str]:
        """Values of secret-typed variables of every scope, for reports to mask."""
        secrets: set[str] = set()
        for scope in (self.local, self.environment, self.collection, self.globals):
            secrets |= scope.secret_values()
        return secrets
