"""Variable scopes and {{name}} substitution."""

from __future__ import annotations

import json
import math
import re
import uuid
from typing import Any

import pytest

from runtime.variables import (
    MAX_SUBSTITUTION_ROUNDS,
    VariableResolver,
    VariableScope,
    js_number_string,
    js_string,
)

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def scope(**values: Any) -> VariableScope:
    return VariableScope([{"key": key, "value": value} for key, value in values.items()])


# --- VariableScope -------------------------------------------------------------------------


def test_disabled_entries_are_ignored_in_both_spellings() -> None:
    variables = VariableScope(
        [
            {"key": "a", "value": "off", "enabled": False},
            {"key": "b", "value": "off", "disabled": True},
            {"key": "c", "value": "on", "enabled": True},
        ]
    )
    assert variables.get("a") is None and not variables.has("a")
    assert variables.get("b") is None and not variables.has("b")
    assert variables.get("c") == "on" and variables.has("c")


def test_the_last_enabled_entry_of_a_key_wins() -> None:
    variables = VariableScope(
        [
            {"key": "host", "value": "first"},
            {"key": "host", "value": "second"},
            {"key": "host", "value": "third", "enabled": False},
        ]
    )
    assert variables.get("host") == "second"


def test_set_updates_the_winning_entry_in_place_and_keeps_its_type() -> None:
    variables = VariableScope(
        [
            {"key": "token", "value": "old", "type": "secret", "enabled": True},
            {"key": "other", "value": 1},
        ]
    )
    variables.set("token", "new")
    assert variables.to_list() == [
        {"key": "token", "value": "new", "type": "secret", "enabled": True},
        {"key": "other", "value": 1},
    ]
    variables.set("token", "newer", type="string")
    assert variables.to_list()[0]["type"] == "string"


def test_set_appends_when_the_key_is_missing_or_only_disabled() -> None:
    variables = VariableScope([{"key": "a", "value": "off", "enabled": False}])
    variables.set("a", "on")
    variables.set("b", 2, type="number")
    assert variables.get("a") == "on"
    assert variables.to_list() == [
        {"key": "a", "value": "off", "enabled": False},
        {"key": "a", "value": "on", "type": "any"},
        {"key": "b", "value": 2, "type": "number"},
    ]


def test_unset_removes_enabled_entries_and_keeps_disabled_ones() -> None:
    variables = VariableScope(
        [
            {"key": "a", "value": 1},
            {"key": "a", "value": 2, "enabled": False},
            {"key": "a", "value": 3},
            {"key": "b", "value": 4},
        ]
    )
    variables.unset("a")
    assert variables.get("a") is None
    assert variables.to_list() == [
        {"key": "a", "value": 2, "enabled": False},
        {"key": "b", "value": 4},
    ]
    variables.clear()
    assert variables.to_list() == [] and len(variables) == 0


def test_to_list_is_json_safe_and_detached() -> None:
    variables = VariableScope([{"key": "n", "value": math.nan, "type": "any", "extra": (1, 2)}])
    variables.set("nested", {"list": [1, {"deep": True}]})
    listed = variables.to_list()
    assert json.loads(json.dumps(listed, allow_nan=False)) == [
        {"key": "n", "value": None, "type": "any", "extra": [1, 2]},
        {"key": "nested", "value": {"list": [1, {"deep": True}]}, "type": "any"},
    ]
    listed[1]["value"]["list"].append("changed")
    assert variables.get("nested") == {"list": [1, {"deep": True}]}


def test_the_scope_copies_the_entries_it_is_given() -> None:
    entries = [{"key": "a", "value": "1"}]
    variables = VariableScope(entries)
    variables.set("a", "2")
    assert entries == [{"key": "a", "value": "1"}]


def test_to_dict_and_from_mapping() -> None:
    variables = VariableScope.from_mapping({"a": 1, "b": None})
    assert variables.to_dict() == {"a": 1, "b": None}
    assert variables.has("b")


def test_secret_values_lists_only_secret_typed_entries() -> None:
    variables = VariableScope(
        [
            {"key": "password", "value": "hunter2", "type": "secret"},
            {"key": "pin", "value": 1234, "type": "secret"},
            {"key": "empty", "value": "", "type": "secret"},
            {"key": "plain", "value": "visible", "type": "default"},
        ]
    )
    assert variables.secret_values() == {"hunter2", "1234"}


# --- JavaScript string conversion ----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("text", "text"),
        (True, "true"),
        (False, "false"),
        (None, "null"),
        (0, "0"),
        (-17, "-17"),
        (1.0, "1"),
        (1.5, "1.5"),
        (-0.0, "0"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1.5e-7, "1.5e-7"),
        (0.000001, "0.000001"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
        (math.nan, "NaN"),
        ([1, "a", None, True, [2, 3]], "1,a,,true,2,3"),
        ({"a": 1}, "[object Object]"),
    ],
)
def test_values_print_as_javascript_string_would(value: Any, text: str) -> None:
    assert js_string(value) == text


def test_js_number_string_matches_for_large_and_small_exponents() -> None:
    assert js_number_string(123456789012345680000.0) == "123456789012345680000"
    assert js_number_string(1.7976931348623157e308) == "1.7976931348623157e+308"
    assert js_number_string(5e-324) == "5e-324"
    assert js_number_string(-2.5e-10) == "-2.5e-10"


# --- VariableResolver ----------------------------------------------------------------------


def layered() -> VariableResolver:
    return VariableResolver(
        local=scope(name="local"),
        data={"name": "data"},
        environment=scope(name="environment"),
        collection=scope(name="collection"),
        globals=scope(name="globals"),
    )


def test_precedence_is_local_data_environment_collection_globals() -> None:
    resolver = layered()
    order = ["local", "data", "environment", "collection", "globals"]
    for expected in order:
        assert resolver.lookup("name") == expected
        assert resolver.resolve("{{name}}") == expected
        if expected == "data":
            resolver.data = {}
        else:
            getattr(resolver, expected).unset("name")
    assert resolver.lookup("name") is None
    assert resolver.resolve("{{name}}") == "{{name}}"


def test_disabled_entries_fall_through_to_lower_scopes() -> None:
    resolver = VariableResolver(
        environment=VariableScope([{"key": "host", "value": "env", "enabled": False}]),
        globals=scope(host="global"),
    )
    assert resolver.resolve("{{host}}") == "global"


def test_changes_to_scopes_are_seen_by_later_lookups() -> None:
    environment = scope(host="a")
    resolver = VariableResolver(environment=environment)
    environment.set("host", "b")
    environment.set("port", 8080)
    assert resolver.resolve("{{host}}:{{port}}") == "b:8080"


def test_nested_values_are_resolved_again() -> None:
    resolver = VariableResolver(
        environment=scope(url="{{scheme}}://{{host}}/api", scheme="https", host="{{name}}.local"),
        globals=scope(name="svc"),
    )
    assert resolver.resolve("{{url}}/users") == "https://svc.local/api/users"


def test_names_built_from_variables_resolve() -> None:
    resolver = VariableResolver(environment=scope(id=7, user_7="alice", suffix="7"))
    assert resolver.resolve("{{user_{{id}}}}") == "alice"
    assert resolver.resolve("{{user_{{suffix}}}} and {{user_{{missing}}}}") == (
        "alice and {{user_{{missing}}}}"
    )


def test_self_references_stop_at_postmans_round_limit() -> None:
    resolver = VariableResolver(environment=scope(same="{{same}}", grow="x{{grow}}"))
    assert resolver.resolve("{{same}}") == "{{same}}"
    assert resolver.resolve("{{grow}}") == "x" * MAX_SUBSTITUTION_ROUNDS + "{{grow}}"
    assert MAX_SUBSTITUTION_ROUNDS == 19


def test_mutual_references_stop_after_19_rounds_like_postman() -> None:
    resolver = VariableResolver(environment=scope(a="{{b}}", b="{{a}}"))
    assert resolver.resolve("{{a}}") == "{{b}}"  # 19 rounds: an odd number of swaps


@pytest.mark.parametrize(
    "text",
    [
        "{{missing}}",
        "{{ name }}",
        "{{}}",
        "{{name",
        "name}}",
        "{name}",
        "{{$notDynamic}}",
        "plain text",
        "",
    ],
)
def test_unresolved_text_is_left_exactly_as_written(text: str) -> None:
    resolver = VariableResolver(environment=scope(name="value"))
    assert resolver.resolve(text) == text


def test_text_without_braces_is_returned_as_is() -> None:
    text = "https://example.test/" + "x" * 1000
    assert VariableResolver().resolve(text) is text


def test_dynamic_variables_give_a_fresh_value_per_occurrence() -> None:
    first, second = VariableResolver().resolve("{{$guid}} {{$guid}}").split(" ")
    assert UUID.fullmatch(first) and UUID.fullmatch(second)
    assert first != second


def test_a_variable_named_like_a_dynamic_one_wins() -> None:
    resolver = VariableResolver(environment=VariableScope([{"key": "$guid", "value": "fixed"}]))
    assert resolver.resolve("{{$guid}}") == "fixed"


def test_dynamic_names_inside_values_are_resolved() -> None:
    resolver = VariableResolver(environment=scope(id="req-{{$randomUUID}}"))
    resolved = resolver.resolve("{{id}}")
    assert resolved.startswith("req-")
    uuid.UUID(resolved[4:])


@pytest.mark.parametrize(
    ("value", "text"),
    [(True, "true"), (1.0, "1"), (1.5, "1.5"), (None, "null"), (0, "0"), ("", ""), ([1, 2], "1,2")],
)
def test_non_string_values_are_substituted_as_javascript_strings(value: Any, text: str) -> None:
    assert VariableResolver(environment=scope(v=value)).resolve("<{{v}}>") == f"<{text}>"
    assert VariableResolver(data={"v": value}).resolve("<{{v}}>") == f"<{text}>"


def test_an_entry_without_a_value_substitutes_an_empty_string() -> None:
    resolver = VariableResolver(environment=VariableScope([{"key": "v", "type": "string"}]))
    assert resolver.resolve("<{{v}}>") == "<>"
    assert resolver.lookup("v") is None and resolver.has("v")


def test_resolve_deep_resolves_strings_and_leaves_keys_and_input_alone() -> None:
    resolver = VariableResolver(environment=scope(a="A", b="B"))
    original: dict[str, Any] = {"{{a}}": ["{{a}}", {"k": "{{b}}"}, 3, None, ("{{a}}",)], "n": True}
    resolved = resolver.resolve_deep(original)
    assert resolved == {"{{a}}": ["A", {"k": "B"}, 3, None, ("A",)], "n": True}
    assert original["{{a}}"][0] == "{{a}}"


def test_secret_values_cover_every_scope() -> None:
    def secret(value: str) -> VariableScope:
        return VariableScope([{"key": "s", "value": value, "type": "secret"}])

    resolver = VariableResolver(
        local=secret("l"),
        environment=secret("e"),
        collection=secret("c"),
        globals=secret("g"),
        data={"s": "not-typed"},
    )
    assert resolver.secret_values() == {"l", "e", "c", "g"}
