"""Signers that attach a credential as it is: basic, bearer, API key and OAuth 2.0 tokens."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from runtime.auth.params import AuthParams
from runtime.auth.urls import add_secrets, encode, remove_query_params, set_query_params
from runtime.exchange import HttpResponse, OutgoingRequest

AUTHORIZATION = "Authorization"


class NoChallenge:
    """For schemes that sign once and never answer a challenge."""

    def challenge(self, request: OutgoingRequest, response: HttpResponse) -> bool:
        """Never re-sends: these schemes have nothing to learn from a response."""
        return False


@dataclass(frozen=True)
class BasicSigner(NoChallenge):
    """``Authorization: Basic base64(username:password)`` (RFC 7617, UTF-8)."""

    username: str
    password: str

    @classmethod
    def from_params(cls, params: AuthParams) -> BasicSigner:
        return cls(params.text("username"), params.text("password"))

    def sign(self, request: OutgoingRequest) -> None:
        credentials = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        value = f"Basic {credentials}"
        request.set_header(AUTHORIZATION, value)
        add_secrets(request, self.password, credentials, value)


@dataclass(frozen=True)
class BearerSigner(NoChallenge):
    """``Authorization: Bearer <token>``; an empty token leaves the request alone."""

    token: str

    @classmethod
    def from_params(cls, params: AuthParams) -> BearerSigner:
        return cls(params.text("token"))

    def sign(self, request: OutgoingRequest) -> None:
        if not self.token:
            return
        value = f"Bearer {self.token}"
        request.set_header(AUTHORIZATION, value)
        add_secrets(request, self.token, value)


@dataclass(frozen=True)
class ApiKeySigner(NoChallenge):
    """An API key as a header (the default) or as a query parameter.

    Parameters:
        key: header or query parameter name.
        value: the key itself.
        in_query: True for ``in: "query"``; any other placement means a header.
    """

    key: str
    value: str
    in_query: bool = False

    @classmethod
    def from_params(cls, params: AuthParams) -> ApiKeySigner:
        placement = params.text("in", "header").strip().lower()
        return cls(params.text("key"), params.text("value"), in_query=placement == "query")

    def sign(self, request: OutgoingRequest) -> None:
        if not (self.key or self.value):
            return
        if self.in_query:
            request.url = set_query_params(request.url, [(self.key, self.value)])
            add_secrets(request, self.value, encode(self.value))
        else:
            request.set_header(self.key, self.value)
            add_secrets(request, self.value)


@dataclass(frozen=True)
class OAuth2Signer(NoChallenge):
    """An OAuth 2.0 access token already obtained; no token is fetched here.

    Parameters:
        access_token: the token; when empty the request is left alone.
        in_query: True for ``addTokenTo: "queryParams"`` (``access_token=...``).
        header_prefix: what precedes the token in the header (``Bearer``).
        token_type: only bearer tokens are attached, as in Postman.
    """

    access_token: str
    in_query: bool = False
    header_prefix: str = "Bearer"
    token_type: str = "bearer"

    @classmethod
    def from_params(cls, params: AuthParams) -> OAuth2Signer:
        return cls(
            access_token=params.text("accessToken"),
            in_query=params.text("addTokenTo", "header") == "queryParams",
            header_prefix=params.text("headerPrefix", "Bearer").strip(),
            token_type=params.text("tokenType").strip().lower() or "bearer",
        )

    def sign(self, request: OutgoingRequest) -> None:
        if not self.access_token or self.token_type != "bearer":
            return
        # Like Postman, clear the other placement so only one token is sent.
        request.remove_header(AUTHORIZATION)
        request.url = remove_query_params(request.url, ["access_token"])
        if self.in_query:
            request.url = set_query_params(request.url, [("access_token", self.access_token)])
            add_secrets(request, self.access_token, encode(self.access_token))
            return
        value = f"{self.header_prefix} {self.access_token}".strip()
        request.headers.append((AUTHORIZATION, value))
        add_secrets(request, self.access_token, value)
