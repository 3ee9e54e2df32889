"""Response bodies are read within the maximum response size, decoded within it too."""

from __future__ import annotations

import gzip
import time
import zlib
from collections.abc import Iterator

import brotli
import pytest

from pmrunner.errors import RequestError, ResponseTooLargeError
from runtime.body_reader import BodyReader
from runtime.exchange import OutgoingRequest
from runtime.http_client import HttpClient
from runtime.options import DEFAULT_MAX_RESPONSE_BYTES, RunOptions
from tests.big_bodies import MIB, serve_big_bodies


@pytest.fixture(scope="module")
def big() -> Iterator[str]:
    with serve_big_bodies() as url:
        yield url


def _get(url: str, **options: int) -> bytes:
    with HttpClient(RunOptions(**options)) as client:  # type: ignore[arg-type]
        return client.send(OutgoingRequest("GET", url)).body


def test_postmans_default_is_50_mb() -> None:
    assert RunOptions().max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES == 50 * 1024 * 1024


@pytest.mark.parametrize("query", ["", "?chunked=1"])
def test_a_body_up_to_the_limit_is_read_whole(big: str, query: str) -> None:
    assert _get(f"{big}/bytes/{2 * MIB}{query}", max_response_bytes=2 * MIB) == b"x" * 2 * MIB


def test_a_declared_length_past_the_limit_fails_before_reading(big: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ResponseTooLargeError, match="of 524288000 bytes is larger than"):
        _get(f"{big}/bytes/{500 * MIB}")
    assert time.perf_counter() - started < 2


def test_a_chunked_body_past_the_limit_stops_being_read(big: str) -> None:
    with pytest.raises(ResponseTooLargeError, match=f"maximum response size of {2 * MIB} bytes"):
        _get(f"{big}/bytes/{500 * MIB}?chunked=1", max_response_bytes=2 * MIB)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br"])
def test_a_compression_bomb_stops_at_the_limit(big: str, coding: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ResponseTooLargeError, match="maximum response size of 52428800 bytes"):
        _get(f"{big}/bomb/{coding}")
    assert time.perf_counter() - started < 10


def test_zero_means_no_limit(big: str) -> None:
    assert len(_get(f"{big}/bytes/{3 * MIB}?chunked=1", max_response_bytes=0)) == 3 * MIB


def test_the_failure_is_a_request_error_in_the_run() -> None:
    assert issubclass(ResponseTooLargeError, RequestError)


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate
        ("br", brotli.compress),
        ("gzip, br", lambda data: brotli.compress(gzip.compress(data))),
    ],
)
@pytest.mark.parametrize("chunk", [1, 7, 65536])
def test_bodies_decode_the_same_in_any_chunking(encoding: str, encode: object, chunk: int) -> None:
    original = b"0123456789abcdef" * 4096
    encoded = encode(original)  # type: ignore[operator]
    reader = BodyReader(encoding, len(original))
    for start in range(0, len(encoded), chunk):
        reader.feed(encoded[start : start + chunk])
    assert reader.body() == original
    assert reader.raw_size == len(encoded)
    too_small = BodyReader(encoding, len(original) - 1)
    with pytest.raises(ResponseTooLargeError):
        too_small.feed(encoded)
        too_small.body()
