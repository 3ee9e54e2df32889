"""Hypothesis strategies for hostile input files: JSON near the shape of Postman's files,
raw bytes, deep nesting and numbers too long to convert.

Hosts in generated URLs are all on loopback; the CLI tests also route every request
through a proxy address on loopback that refuses connections.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# Keys that Postman's files use, so that generated objects reach deep into the loaders.
KEYS = [
    "info", "item", "request", "url", "raw", "host", "path", "query", "variable", "auth",
    "type", "bearer", "basic", "event", "listen", "script", "exec", "body", "mode",
    "urlencoded", "formdata", "graphql", "file", "header", "key", "value", "disabled",
    "enabled", "description", "content", "name", "id", "_postman_id", "schema",
    "protocolProfileBehavior", "followRedirects", "maxRedirects", "strictSSL", "response",
    "collection", "environment", "globals", "values", "order", "requests", "folders",
    "folders_order", "headers", "dataMode", "data", "rawModeData", "currentHelper",
    "helperAttributes", "pathVariables", "pathVariableData", "method", "x-pmrunner-network",
    "monitors", "schedule", "cron", "every", "timezone", "options", "retry", "attempts",
    "webhooks", "network", "uid", "active", "notificationLimit", "*",
]  # fmt: skip
URLS = [
    "http://127.0.0.1:9/a", "https://127.0.0.1:9/", "{{base}}/x", "127.0.0.1:9", "", "http://",
    "http://[::1]:9/?a=1&b", "http://127.0.0.1:9/:id", "ftp://127.0.0.1:9/", "http://127.1:9/%zz",
]  # fmt: skip
HUGE_INTEGER = "9" * 5000
DEEP = 5000


def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(URLS),
        st.sampled_from(KEYS),
        st.text(max_size=12),
    )


def json_values(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    """JSON values whose object keys are mostly Postman's."""
    keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=6))
    return st.recursive(
        scalars(),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(keys, children, max_size=5),
        ),
        max_leaves=max_leaves,
    )


def requests() -> st.SearchStrategy[Any]:
    """Requests: a URL, an object whose fields are each well-formed or hostile, or anything."""
    field = json_values(4)
    return st.one_of(
        st.sampled_from(URLS),
        st.fixed_dictionaries(
            {"url": st.one_of(st.sampled_from(URLS), json_values(6))},
            optional={
                "method": st.one_of(st.sampled_from(["GET", "POST", "get", ""]), field),
                "header": field,
                "body": st.one_of(
                    st.fixed_dictionaries({"mode": st.sampled_from(
                        ["raw", "urlencoded", "formdata", "file", "graphql", "x"])},
                        optional={k: field for k in ("raw", "urlencoded", "formdata", "graphql",
                                                     "file", "options", "disabled")}),
                    field,
                ),
                "auth": st.one_of(
                    st.fixed_dictionaries({"type": st.sampled_from(
                        ["bearer", "basic", "apikey", "digest", "oauth1", "hawk", "awsv4",
                         "noauth", "inherit", "ntlm", "x"])},
                        optional={k: field for k in ("bearer", "basic", "apikey", "digest",
                                                     "oauth1", "hawk", "awsv4")}),
                    field,
                ),
                "description": field,
            },
        ),
        json_values(10),
    )  # fmt: skip


def collections() -> st.SearchStrategy[Any]:
    """Collections of every format, mostly well-formed at the top and hostile below."""
    item = st.fixed_dictionaries(
        {"name": scalars(), "request": requests()},
        optional={
            "item": json_values(8),
            "event": json_values(6),
            "protocolProfileBehavior": json_values(4),
            "description": json_values(3),
        },
    )
    v2 = st.fixed_dictionaries(
        {"item": st.one_of(st.lists(item, max_size=3), json_values(6))},
        optional={
            "info": st.one_of(st.fixed_dictionaries({"name": scalars()}), json_values(4)),
            "auth": json_values(6),
            "variable": json_values(6),
            "event": json_values(4),
            "protocolProfileBehavior": json_values(4),
        },
    )
    v1 = st.fixed_dictionaries(
        {"order": json_values(4)},
        optional={
            "name": scalars(),
            "requests": st.lists(
                st.fixed_dictionaries({"id": scalars()}, optional={k: json_values(4) for k in (
                    "url", "headers", "data", "dataMode", "rawModeData", "auth", "currentHelper",
                    "helperAttributes", "pathVariables", "events", "tests",
                    "protocolProfileBehavior", "method")}),
                max_size=3,
            ),
            "folders": json_values(8),
            "folders_order": json_values(4),
        },
    )  # fmt: skip
    return st.one_of(v2, v1, json_values(), v2.map(lambda c: {"collection": c}))


def variable_files() -> st.SearchStrategy[Any]:
    entry = st.one_of(
        st.fixed_dictionaries(
            {"key": scalars(), "value": json_values(4)},
            optional={"type": scalars(), "enabled": scalars()},
        ),
        json_values(3),
    )
    return st.one_of(
        st.fixed_dictionaries(
            {"values": st.lists(entry, max_size=4)}, optional={"name": scalars()}
        ),
        st.fixed_dictionaries({"environment": json_values(8)}),
        json_values(),
    )


def _special_documents(body: str) -> st.SearchStrategy[str]:
    """Text that broke parsers: long integers, deep nesting."""
    return st.sampled_from(
        [
            HUGE_INTEGER,
            body.replace("0", HUGE_INTEGER, 1) if "0" in body else body + HUGE_INTEGER,
            "[" * DEEP + "]" * DEEP,
            '{"a":' * DEEP + "1" + "}" * DEEP,
            '{"info":{"name":"x"},"item":' + "[" * 900 + "]" * 900 + "}",
            '{"info":{"name":"x"},"item":[' + '{"name":"f","item":[' * 400 + "]}" * 400 + "]}",
            '{"values":[{"key":"k","value":' + HUGE_INTEGER + "}]}",
            '{"info":{"name":"x"},"item":[],"variable":[{"key":"k","value":1e400}]}',
        ]
    )


def json_documents(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Files holding ``values`` as JSON, corrupted JSON, odd encodings or raw bytes."""
    text = values.map(json.dumps)
    return st.one_of(
        text.map(str.encode),
        text.flatmap(_special_documents).map(str.encode),
        text.map(lambda t: t.encode("utf-16")),
        st.tuples(text, st.integers(min_value=0, max_value=40)).map(
            lambda pair: pair[0][: pair[1]].encode()
        ),
        st.binary(max_size=64),
    )


def csv_documents() -> st.SearchStrategy[bytes]:
    """CSV text from the characters that matter to a CSV parser, or raw bytes."""
    alphabet = st.sampled_from(list('",\n\r \t\\a1.e\ufeff'))
    text = st.lists(alphabet, max_size=60).map("".join)
    return st.one_of(
        text.map(str.encode),
        text.map(lambda t: ("a,b\n" + t + "\n" + HUGE_INTEGER).encode()),
        st.binary(max_size=64),
        text.map(lambda t: t.encode("utf-16-le")),
    )


def yaml_documents(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """YAML: JSON (a subset), YAML-only constructs (list keys, anchors, tags), or bytes."""
    specials = st.sampled_from(
        [
            "? [a, b]\n: 1\n",
            "monitors:\n  - ? [name]\n    : x\n",
            "monitors:\n  - {name: a, collection: c.json, schedule: {every: "
            + HUGE_INTEGER
            + "}}\n",
            "a: &x [*x]\n",
            "monitors: !!python/object:os.system {}\n",
            "- " * 3000 + "x\n",
            "[" * DEEP + "]" * DEEP,
            "monitors:\n  - name: a\n    collection: c.json\n    schedule: {cron: 1}\n",
            "*:\n  k: [v]\n",
            "'*': {k: {a: b}}\n",
            "x: !!binary AAAA\n",
            "? {a: b}\n: 1\n",
            "x: 2001-12-14t21:59:43.10-05:00\n",
        ]
    )
    return st.one_of(
        values.map(lambda v: json.dumps(v).encode()),
        specials.map(str.encode),
        st.binary(max_size=64),
    )
