"""Reading the parameters of a Postman auth object, in either collection format.

Collections v2.1 store an auth type's parameters as a list of
``{"key", "value", "type"}`` entries; v2.0 stores them as a plain object.
``AuthParams`` hides that difference and resolves ``{{variables}}`` in every
string value once, up front, so the signers only see final values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pmrunner.errors import CollectionFormatError

Resolve = Callable[[str], str]

_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off"})


class AuthParams:
    """The parameters of one auth object, with variables resolved.

    Parameters:
        auth_type: the auth's ``type`` (``basic``, ``digest``, ...), used in messages.
        values: parameter name to value; strings are already resolved.
    """

    def __init__(self, auth_type: str, values: Mapping[str, Any]) -> None:
        self.auth_type = auth_type
        self._values = dict(values)

    @classmethod
    def from_auth(cls, auth: Mapping[str, Any], resolve: Resolve) -> AuthParams:
        """Read the parameters of ``auth[auth["type"]]`` in the v2.0 or v2.1 shape.

        Parameters:
            auth: Postman's auth object; its ``type`` must be a string.
            resolve: substitutes ``{{variables}}`` in a string.

        Raises ``CollectionFormatError`` naming the auth type when the
        parameters are neither a list of key/value objects nor an object.
        """
        auth_type = str(auth["type"])
        raw = auth.get(auth_type)
        pairs = _raw_pairs(auth_type, raw)
        return cls(auth_type, {key: _resolved(value, resolve) for key, value in pairs})

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def text(self, name: str, default: str = "") -> str:
        """A parameter as a string; ``default`` when it is missing or null."""
        value = self._values.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def flag(self, name: str, default: bool = False) -> bool:
        """A yes/no parameter, stored by Postman as a boolean or as ``"true"``/``"false"``.

        Anything else (missing, empty, an unknown word) counts as ``default``.
        """
        value = self._values.get(name)
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return value != 0
        if isinstance(value, str):
            word = value.strip().lower()
            if word in _TRUE_WORDS:
                return True
            if word in _FALSE_WORDS:
                return False
        return default


def _raw_pairs(auth_type: str, raw: Any) -> list[tuple[str, Any]]:
    """The (key, value) pairs of the parameters, whichever format holds them."""
    if raw is None:
        return []
    if isinstance(raw, Mapping):  # v2.0
        return [(str(key), value) for key, value in raw.items()]
    if isinstance(raw, list):  # v2.1
        pairs = []
        for position, entry in enumerate(raw):
            if not isinstance(entry, Mapping) or not isinstance(entry.get("key"), str):
                raise CollectionFormatError(
                    f"auth '{auth_type}': parameter {position} must be an object "
                    "with a string 'key'"
                )
            pairs.append((entry["key"], entry.get("value")))
        return pairs
    raise CollectionFormatError(
        f"auth '{auth_type}': parameters must be a list or an object, not {type(raw).__name__}"
    )


def _resolved(value: Any, resolve: Resolve) -> Any:
    return resolve(value) if isinstance(value, str) else value
