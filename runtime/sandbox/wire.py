"""How values cross between Python and the sandbox's V8 context.

Python hands V8 a dispatch as JSON inside a JavaScript string literal (which
``JSON.parse`` reads in the host, see host.js) and reads back the JSON texts
that the host's turns return. Both go through orjson, with json for the few
values orjson refuses.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

JSON = dict[str, Any]


def js_string(value: Any, attachment_key: str) -> tuple[str, list[bytes]]:
    """``value`` as JSON, in a JavaScript string literal (for ``JSON.parse``).

    ``bytes`` in ``value`` are UTF-8 texts (large bodies): each is left out of
    the JSON, named ``{attachment_key: index}`` there, and returned in the
    list, to be handed to V8 as a string of its own (``Isolate.set_text``).
    Non-ASCII text stays as it is (escaping it would multiply its size by
    six, twice); lone surrogates, which UTF-8 cannot carry to V8, are escaped.
    """
    texts: list[bytes] = []

    def attach(text: object) -> JSON:
        if not isinstance(text, bytes):
            raise TypeError(f"{type(text).__name__} cannot go to the sandbox")
        texts.append(text)
        return {attachment_key: len(texts) - 1}

    try:
        # orjson: a fifth of json's time for a one-line test's context.
        literal = orjson.dumps(orjson.dumps(value, default=attach).decode()).decode()
    except orjson.JSONEncodeError:
        # Lone surrogates (which UTF-8 cannot carry), integers past 64 bits,
        # keys that are not strings: json escapes, converts and writes them
        # (and raises attach's TypeError again for what cannot go).
        texts.clear()
        literal = json.dumps(json.dumps(value, default=attach))
    return literal, texts


def json_of(text: str) -> Any:
    """The value of a JSON text from the sandbox (orjson; json for what orjson refuses)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # an escaped lone surrogate, which JSON.stringify may write
