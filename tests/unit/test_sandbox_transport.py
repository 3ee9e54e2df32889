"""What a script reads of a response is the response, whatever the way its body took to V8.

Bodies from 64 KiB on go to the sandbox as strings of their own (binary ones
as base64), small ones inside the context's JSON: both must read the same.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from runtime.exchange import HttpResponse
from runtime.sandbox.engine import SandboxContext
from runtime.step import _response_json
from tests.unit.test_sandbox import RecordingServices, scopes

# Prints the body as the script reads it: the text's length and SHA-256 (of
# its UTF-8), then the stream's length and a checksum of its bytes (none for text).
DIGEST_SCRIPT = """
const text = pm.response.text();
const bytes = pm.response.stream || [];
let sum = 0;
for (let i = 0; i < bytes.length; i++) { sum = (sum + bytes[i] * (i % 251 + 1)) % 2147483647; }
console.log(text.length, CryptoJS.SHA256(text).toString());
console.log(bytes.length, sum);
"""


def checksum(body: bytes) -> int:
    total = 0
    for index, byte in enumerate(body):
        total = (total + byte * (index % 251 + 1)) % 2147483647
    return total


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxContext]:
    context = SandboxContext()
    yield context
    context.close()


def read_by_script(sandbox: SandboxContext, body: bytes, content_type: str) -> list[str]:
    response = HttpResponse(200, "OK", [("Content-Type", content_type)], body, 1.0)
    outcome = sandbox.execute(
        listen="test",
        source=DIGEST_SCRIPT,
        context={**scopes(), "data": {"row": "kept"}, "response": _response_json(response)},
        services=RecordingServices(),
        timeout_ms=20000,
    )
    assert not outcome.errors, outcome.errors
    return [text for level, text in outcome.console if level == "log"]


@pytest.mark.parametrize("size", [1000, 300_000], ids=["in the JSON", "apart"])
def test_a_text_body_reads_the_same_either_way(sandbox: SandboxContext, size: int) -> None:
    text = ('héllo wörld ☃ 𝄞 \u2028 "quoted" \\ {{var}}\n' * size)[:size]
    body = text.encode("utf-8")
    lines = read_by_script(sandbox, body, "text/plain; charset=utf-8")
    utf16_length = len(text.encode("utf-16-le")) // 2  # JavaScript's length
    assert lines == [f"{utf16_length} {hashlib.sha256(body).hexdigest()}", "0 0"]


@pytest.mark.parametrize("size", [1000, 300_000], ids=["in the JSON", "apart"])
def test_a_binary_body_reads_the_same_either_way(sandbox: SandboxContext, size: int) -> None:
    body = (bytes(range(256)) * (size // 256 + 1))[:size]
    lines = read_by_script(sandbox, body, "application/octet-stream")
    assert lines[1] == f"{len(body)} {checksum(body)}"


def test_a_body_apart_leaves_the_rest_of_the_context_as_it_was(sandbox: SandboxContext) -> None:
    body = b"x" * 200_000
    response = HttpResponse(200, "OK", [("Content-Type", "text/plain")], body, 1.0)
    outcome = sandbox.execute(
        listen="test",
        source="console.log(pm.iterationData.get('row'), pm.response.text().length,"
        " pm.response.code, pm.response.headers.get('Content-Type'))",
        context={**scopes(), "data": {"row": "kept"}, "response": _response_json(response)},
        services=RecordingServices(),
        timeout_ms=20000,
    )
    assert outcome.console == [("log", "kept 200000 200 text/plain")]


def test_values_orjson_refuses_still_go_both_ways(sandbox: SandboxContext) -> None:
    # A lone surrogate, an integer past 64 bits and a non-string key go to V8
    # as json writes them; a lone surrogate comes back from V8 as it went.
    outcome = sandbox.execute(
        listen="test",
        source="""
        const d = pm.iterationData.toObject();
        console.log(d.big === 1180591620717411303424, d.odd.length, d.odd.charCodeAt(1));
        console.log(d.odd);
        """,
        context={**scopes(), "data": {"big": 2**70, "odd": "a\ud800b", 7: "seven"}},
        services=RecordingServices(),
        timeout_ms=20000,
    )
    assert not outcome.errors, outcome.errors
    assert outcome.console == [("log", "true 3 55296"), ("log", "a\ud800b")]


def test_what_cannot_go_to_the_sandbox_is_refused(sandbox: SandboxContext) -> None:
    with pytest.raises(TypeError, match="object cannot go to the sandbox"):
        sandbox.execute(
            listen="test",
            source="1",
            context={**scopes(), "data": {"x": object()}},
            services=RecordingServices(),
            timeout_ms=20000,
        )
