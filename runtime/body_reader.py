"""Reading a response body within a size limit, decompressing as it arrives.

A body is read from the connection in chunks and undone chunk by chunk
(``Content-Encoding`` gzip, deflate, br; several in a row are allowed), so
that neither the bytes on the wire nor the decoded bytes ever exceed the
limit in memory: a 500 MB body or a gzip bomb (1 MB that inflates to 1 GiB)
fails once the limit is passed, having held about the limit and no more.

Postman's own default limit is 50 MB (``DEFAULT_MAX_RESPONSE_BYTES``); 0
means no limit. A coding nobody asked for (not gzip, deflate or br) is left
as it is, and so are the codings applied before it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any, Protocol

import brotli

from pmrunner.errors import RequestError, ResponseTooLargeError
from runtime.options import DEFAULT_MAX_RESPONSE_BYTES

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "BodyReader", "decode_body", "read_body"]

_READ_SIZE = 64 * 1024


class _Decoder(Protocol):
    def feed(self, data: bytes, room: int | None) -> bytes:
        """Decode ``data``; at most ``room + 1`` bytes come out (None: no bound)."""

    def finish(self, room: int | None) -> bytes:
        """What is left once the input has ended."""


class _ZlibDecoder:
    """gzip or deflate; for deflate, the zlib wrapper or raw, as the first bytes tell."""

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._inflater: Any = (
            zlib.decompressobj(16 + zlib.MAX_WBITS) if coding.endswith("gzip") else None
        )
        self._head = b""

    def feed(self, data: bytes, room: int | None) -> bytes:
        if self._inflater is None:  # deflate: wait for the two bytes that tell the format
            self._head += data
            if len(self._head) < 2:
                return b""
            data, self._head = self._head, b""
            first, second = data[0], data[1]
            wrapped = first & 0x0F == 8 and (first * 256 + second) % 31 == 0
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        if room is None:
            return bytes(self._inflater.decompress(data))
        # One byte past the room is enough to know the body is too large.
        return bytes(self._inflater.decompress(data, room + 1))

    def finish(self, room: int | None) -> bytes:
        if self._inflater is None:  # a deflate body of one byte: not the zlib wrapper
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            return bytes(self._inflater.decompress(self._head))
        # A bounded decompress that stopped early left output past the bound: already refused.
        return bytes(self._inflater.flush())


class _BrotliDecoder:
    def __init__(self) -> None:
        self._decompressor = brotli.Decompressor()

    def feed(self, data: bytes, room: int | None) -> bytes:
        if room is None:
            return bytes(self._decompressor.process(data))
        limit = room + 1
        out = [self._decompressor.process(data, output_buffer_limit=limit)]
        produced = len(out[0])
        while produced <= room and not self._decompressor.can_accept_more_data():
            more = self._decompressor.process(b"", output_buffer_limit=limit - produced)
            if not more:
                break
            out.append(more)
            produced += len(more)
        return b"".join(out)

    def finish(self, room: int | None) -> bytes:
        return b""


_DECODERS: dict[str, Callable[[str], _Decoder]] = {
    "gzip": _ZlibDecoder,
    "x-gzip": _ZlibDecoder,
    "deflate": _ZlibDecoder,
    "br": lambda _: _BrotliDecoder(),
}


def _codings(content_encoding: str | None) -> list[str]:
    """The codings to undo, last applied first, up to the first one nobody asked for."""
    chain = []
    for coding in reversed([c.strip().lower() for c in (content_encoding or "").split(",")]):
        if coding in ("", "identity"):
            continue
        if coding not in _DECODERS:
            break
        chain.append(coding)
    return chain


class BodyReader:
    """Decodes one body as it arrives, within a size limit.

    Parameters:
        content_encoding: the response's Content-Encoding header, if any.
        limit: the most bytes allowed on the wire and after decoding (0: no limit).
    """

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        self._limit = limit
        self._chain = [(coding, _DECODERS[coding](coding)) for coding in _codings(content_encoding)]
        self._produced = [0] * len(self._chain)  # bytes out of each decoder so far
        self._parts: list[bytes] = []
        self.raw_size = 0

    def feed(self, chunk: bytes) -> None:
        """Add bytes as received.

        Raises:
            ResponseTooLargeError: the body on the wire or decoded passes the limit.
            RequestError: the bytes are not valid for their coding.
        """
        self.raw_size += len(chunk)
        self._check(self.raw_size)
        self._push(chunk, final=False)

    def body(self) -> bytes:
        """The whole decoded body, once the input has ended."""
        self._push(b"", final=True)
        body = b"".join(self._parts)
        self._parts = [body]
        return body

    def _push(self, data: bytes, *, final: bool) -> None:
        """Pass ``data`` through each decoder in turn; each one's output is held to the limit."""
        for stage, (coding, decoder) in enumerate(self._chain):
            room = None if self._limit <= 0 else self._limit - self._produced[stage]
            try:
                data = decoder.feed(data, room) if data else b""
                if final:
                    data += decoder.finish(room)
            except (zlib.error, brotli.error) as error:
                raise RequestError(f"cannot decode the {coding} response body: {error}") from None
            self._produced[stage] += len(data)
            self._check(self._produced[stage])
        if data:
            self._parts.append(data)

    def _check(self, size: int) -> None:
        if 0 < self._limit < size:
            raise ResponseTooLargeError(
                f"response body larger than the maximum response size of {self._limit} bytes"
            )


def read_body(
    raw: Any, content_encoding: str | None, limit: int, check_time: Callable[[], Any]
) -> tuple[bytes, int]:
    """Read and decode a body from urllib3's response ``raw``; (body, bytes on the wire).

    Parameters:
        raw: the urllib3 response, read without its own decoding.
        content_encoding: the response's Content-Encoding header.
        limit: the maximum response size in bytes (0: none).
        check_time: called before each read; raises once the request's time is up.
    """
    reader = BodyReader(content_encoding, limit)
    while True:
        check_time()
        chunk = raw.read1(_READ_SIZE, decode_content=False)
        if not chunk:
            break
        reader.feed(chunk)
    return reader.body(), reader.raw_size


def decode_body(body: bytes, content_encoding: str | None) -> bytes:
    """Undo Content-Encoding on a whole body (gzip, deflate, br; several in a row).

    Parameters:
        body: the bytes as received.
        content_encoding: the response's Content-Encoding header, if any.

    Raises:
        RequestError: the body is not valid for its declared encoding.
    """
    reader = BodyReader(content_encoding, 0)
    reader.feed(body)
    return reader.body()
