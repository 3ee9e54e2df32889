"""What every auth signer provides."""

from __future__ import annotations

from typing import Protocol

from runtime.exchange import HttpResponse, OutgoingRequest


class Signer(Protocol):
    """Signs a request for one auth type.

    sign() mutates the request (headers, query, body) and adds the values a
    report must mask to ``request.secrets``. challenge() sees a response and,
    when the scheme answers challenges (digest), re-signs the request and
    returns True so that the client sends it once more.
    """

    def sign(self, request: OutgoingRequest) -> None: ...

    def challenge(self, request: OutgoingRequest, response: HttpResponse) -> bool: ...
