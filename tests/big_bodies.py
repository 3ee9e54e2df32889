"""A loopback server of very large response bodies, streamed: for memory tests and benchmarks.

Nothing is held whole in memory: a body of N bytes is written 1 MiB at a time, and the
compression bombs are built from one compressed block repeated.

    /bytes/<n>              n bytes of "x", with Content-Length
    /bytes/<n>?chunked=1    the same without Content-Length (chunked transfer)
    /bytes/<n>?binary=1     n bytes of 0xff (not UTF-8), with Content-Length
    /bomb/<gzip|deflate|br> a body of at most about 1 MB that decodes to BOMB_SIZE zero bytes
"""

from __future__ import annotations

import contextlib
import functools
import struct
import zlib
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

import brotli

from tests.echo_server import serve

MIB = 1 << 20
BOMB_SIZE = 1 << 30  # 1 GiB decoded


@functools.cache
def gzip_bomb(coding: str) -> bytes:
    """At most about 1 MB of ``coding`` ("gzip", "deflate", "br") decoding to BOMB_SIZE zeros."""
    if coding == "br":
        return _brotli_bomb()  # about 200 KB: brotli packs the repeat tighter still
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    compressor.compress(b"")
    # A full flush ends a byte-aligned block and forgets the history: the block repeats.
    block = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    deflated = block * (BOMB_SIZE // MIB) + compressor.flush()
    if coding == "deflate":
        return deflated  # raw deflate, as many servers send it
    crc = 0
    zeros = bytes(MIB)
    for _ in range(BOMB_SIZE // MIB):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + deflated + struct.pack("<II", crc, BOMB_SIZE & 0xFFFFFFFF)


def _brotli_bomb() -> bytes:
    compressor = brotli.Compressor(quality=1)
    zeros = bytes(MIB)
    parts = [compressor.process(zeros) for _ in range(BOMB_SIZE // MIB)]
    return b"".join(parts) + compressor.finish()


class BigBodyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: object) -> None:
        pass

    def handle(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            super().handle()  # clients hang up past their limit: that is the point

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        kind, _, argument = parts.path.strip("/").partition("/")
        if kind == "bytes":
            filler = b"\xff" if "binary=1" in parts.query else b"x"
            self._stream(int(argument), chunked="chunked=1" in parts.query, filler=filler)
        elif kind == "bomb":
            body = gzip_bomb(argument)
            self.send_response(200)
            self.send_header("Content-Encoding", argument)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def _stream(self, size: int, *, chunked: bool, filler: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(size))
        self.end_headers()
        piece = filler * MIB
        sent = 0
        while sent < size:
            data = piece[: min(MIB, size - sent)]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            sent += len(data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


def serve_big_bodies() -> AbstractContextManager[str]:
    """Serve on 127.0.0.1 (a free port) while the block runs; yields the base URL."""
    return serve(handler=BigBodyHandler)


# Each test script reads the body, as the scripts that made memory grow did.
TEST_SCRIPT = (
    "pm.test('read', function () { pm.expect(pm.response.text().length).to.be.above(0); });"
)


def collection_of(urls: dict[str, str]) -> dict[str, object]:
    """A collection that GETs each URL (named by its key) and reads the body in a test."""
    return {
        "info": {"name": "big bodies"},
        "item": [
            {
                "name": name,
                "request": {"method": "GET", "url": url},
                "event": [{"listen": "test", "script": {"exec": [TEST_SCRIPT]}}],
            }
            for name, url in urls.items()
        ],
    }
