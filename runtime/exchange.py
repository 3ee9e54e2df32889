"""The two halves of an HTTP exchange, as the runtime passes them around.

``OutgoingRequest`` is a request ready to send: variables substituted, body
encoded. Auth signers mutate it; the HTTP client sends it. ``HttpResponse`` is
what came back, body decoded (gzip, deflate, br).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class OutgoingRequest:
    """A request ready to send.

    headers keep order and duplicates, as Postman sends them.
    secrets lists values that reports must mask (tokens, passwords, keys).
    """

    method: str
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    body_mode: str | None = None
    secrets: set[str] = field(default_factory=set)

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in reversed(self.headers):
            if key.lower() == lowered:
                return value
        return None

    def set_header(self, name: str, value: str) -> None:
        """Replace every header of that name by one, keeping its first position."""
        lowered = name.lower()
        position = next(
            (n for n, (key, _) in enumerate(self.headers) if key.lower() == lowered), None
        )
        self.headers = [(k, v) for k, v in self.headers if k.lower() != lowered]
        if position is None:
            self.headers.append((name, value))
        else:
            self.headers.insert(position, (name, value))

    def remove_header(self, name: str) -> None:
        lowered = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != lowered]

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""


@dataclass
class HttpResponse:
    """A response with its body decoded; ``history`` holds followed redirects."""

    code: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    response_time_ms: float
    url: str = ""
    history: list[HttpResponse] = field(default_factory=list)
    raw_size: int = 0  # bytes on the wire for the body, before decoding
    # The headers of the request that got this response (the last hop's, for the final
    # response) as they went on the wire, Cookie included; unmasked: reports mask secrets.
    sent_headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        lowered = name.lower()
        return [value for key, value in self.headers if key.lower() == lowered]
