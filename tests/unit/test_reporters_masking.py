"""Masking secrets in reports: text, URLs, headers, JSON documents and auth parameters."""

from __future__ import annotations

import pytest

from runtime import masking
from runtime.masking import (
    MASK,
    collection_secrets,
    credential_values,
    mask,
    mask_auth_params,
    mask_headers,
    mask_json,
    run_secrets,
)
from tests.unit.reporting_helpers import SECRET, sample_run


def test_mask_replaces_longest_secret_first() -> None:
    assert mask("a abcdef b abc", ["abc", "abcdef"]) == f"a {MASK} b {MASK}"


def test_mask_ignores_empty_secrets_and_keeps_other_text() -> None:
    assert mask("nothing to hide", ["", "absent"]) == "nothing to hide"


def test_mask_catches_url_encoded_secrets() -> None:
    url = "http://127.0.0.1/?key=p%40ss%20word&q=p+ss"
    assert mask(url, ["p@ss word"]) == f"http://127.0.0.1/?key={MASK}&q=p+ss"


def test_mask_headers_always_masks_authorization_and_api_keys() -> None:
    headers = [
        ("Authorization", "Bearer abc.def"),
        ("proxy-authorization", "Basic dXNlcjpwYXNz"),
        ("X-Api-Key", "any-value"),
        ("X-Auth-Token", "t0k3n"),
        ("Accept", "application/json"),
        ("Cookie", f"sid={SECRET}; theme=dark"),
    ]
    assert mask_headers(headers, [SECRET]) == [
        ("Authorization", f"Bearer {MASK}"),
        ("proxy-authorization", f"Basic {MASK}"),
        ("X-Api-Key", MASK),
        ("X-Auth-Token", MASK),
        ("Accept", "application/json"),
        ("Cookie", f"sid={MASK}; theme=dark"),
    ]


def test_texts_without_a_secret_compile_no_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every request has a secret of its own (its Postman-Token): compiling a
    # pattern for texts that hold none of it cost 50 us a request.
    def refuse(variants: tuple[str, ...]) -> None:
        raise AssertionError(f"compiled {variants}")

    monkeypatch.setattr(masking, "_compiled", refuse)
    assert (
        mask("GET http://127.0.0.1/get?i=1", ["0f1e2d3c-token"]) == "GET http://127.0.0.1/get?i=1"
    )
    headers = [("Accept", "*/*"), ("Postman-Token", "0f1e2d3c-token")]
    assert mask_headers(headers, ["0f1e2d3c-token"]) == [("Accept", "*/*"), ("Postman-Token", MASK)]


def test_credentials_written_into_a_collection_are_found_everywhere_in_it() -> None:
    document = {
        "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "col-bearer"}]},
        "variable": [
            {"key": "s", "value": "col-secret-var", "type": "secret"},
            {"key": "p", "value": "plain"},
        ],
        "item": [
            {
                "request": {
                    "header": [
                        {"key": "Authorization", "value": "Bearer hdr-bearer"},
                        {"key": "x-api-key", "value": "hdr-api-key"},
                        {"key": "X-Token", "value": "{{token}}"},
                        {"key": "Accept", "value": "text/plain"},
                    ],
                    "auth": {"type": "basic", "basic": {"username": "u", "password": "pw-1"}},
                }
            }
        ],
    }
    assert collection_secrets(document) == {
        "col-bearer",
        "col-secret-var",
        "hdr-bearer",
        "hdr-api-key",
        "pw-1",
    }
    assert credential_values([("Authorization", "Basic dXNlcjpwYXNz")]) == {"dXNlcjpwYXNz"}


def test_mask_json_masks_every_string_leaf() -> None:
    document = {"a": [SECRET, {"b": f"x{SECRET}x"}], "n": 3, SECRET: None}
    masked = mask_json(document, [SECRET])
    assert masked == {"a": [MASK, {"b": f"x{MASK}x"}], "n": 3, SECRET: None}


def test_mask_auth_params_hides_credentials_but_not_references_or_names() -> None:
    collection = {
        "auth": {
            "type": "basic",
            "basic": [
                {"key": "username", "value": "alice"},
                {"key": "password", "value": "hunter2"},
            ],
        },
        "item": [
            {
                "request": {
                    "auth": {
                        "type": "apikey",
                        "apikey": [
                            {"key": "key", "value": "X-Api-Key"},
                            {"key": "value", "value": "k-123"},
                            {"key": "in", "value": "header"},
                        ],
                    }
                }
            },
            {"request": {"auth": {"type": "bearer", "bearer": {"token": "{{token}}"}}}},
        ],
    }
    masked = mask_auth_params(collection)
    assert masked["auth"]["basic"] == [
        {"key": "username", "value": "alice"},
        {"key": "password", "value": MASK},
    ]
    apikey = masked["item"][0]["request"]["auth"]["apikey"]
    assert [p["value"] for p in apikey] == ["X-Api-Key", MASK, "header"]
    assert masked["item"][1]["request"]["auth"]["bearer"] == {"token": "{{token}}"}
    assert collection["auth"]["basic"][1]["value"] == "hunter2"  # the input is untouched


def test_run_secrets_are_the_secret_typed_variables() -> None:
    assert run_secrets(sample_run()) == {SECRET}
