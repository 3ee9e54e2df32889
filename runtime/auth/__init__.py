"""Auth signers: from Postman's auth object to a signed request.

``signer_for(auth, resolve)`` reads an auth object in the v2.0 or v2.1
collection format, resolves ``{{variables}}`` in its parameters and returns
the signer of its type, or None when the request goes without auth.

    signer = signer_for(item.effective_auth(), variables.resolve)
    if signer is not None:
        signer.sign(request)
        ...
        if signer.challenge(request, response):
            ...send the request again...
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pmrunner.errors import CollectionFormatError, UnsupportedAuthError
from runtime.auth.base import Signer
from runtime.auth.params import AuthParams, Resolve

if TYPE_CHECKING:
    from runtime.auth.awsv4 import AwsV4Signer
    from runtime.auth.digest import DigestSigner
    from runtime.auth.hawk import HawkSigner
    from runtime.auth.oauth1 import OAuth1Signer
    from runtime.auth.simple import ApiKeySigner, BasicSigner, BearerSigner, OAuth2Signer

__all__ = [
    "SUPPORTED_TYPES",
    "ApiKeySigner",
    "AuthParams",
    "AwsV4Signer",
    "BasicSigner",
    "BearerSigner",
    "DigestSigner",
    "HawkSigner",
    "OAuth1Signer",
    "OAuth2Signer",
    "Signer",
    "signer_for",
]

# type -> (module, class). Modules load on first use: oauth1 pulls in oauthlib
# and its crypto, which every run without OAuth 1.0 would otherwise pay for.
_BUILDERS: dict[str, tuple[str, str]] = {
    "basic": ("runtime.auth.simple", "BasicSigner"),
    "bearer": ("runtime.auth.simple", "BearerSigner"),
    "apikey": ("runtime.auth.simple", "ApiKeySigner"),
    "digest": ("runtime.auth.digest", "DigestSigner"),
    "oauth1": ("runtime.auth.oauth1", "OAuth1Signer"),
    "oauth2": ("runtime.auth.simple", "OAuth2Signer"),
    "hawk": ("runtime.auth.hawk", "HawkSigner"),
    "awsv4": ("runtime.auth.awsv4", "AwsV4Signer"),
}
SUPPORTED_TYPES = frozenset(_BUILDERS)
_NO_AUTH_TYPES = (None, "", "noauth", "inherit")


def signer_for(auth: Mapping[str, Any] | None, resolve: Resolve) -> Signer | None:
    """The signer for a Postman auth object, or None when there is nothing to sign.

    Parameters:
        auth: Postman's auth object, e.g. ``{"type": "basic", "basic": [...]}``
            (v2.1) or ``{"type": "basic", "basic": {"username": ...}}`` (v2.0).
        resolve: substitutes ``{{variables}}`` in a string; applied to every
            string parameter before use.

    Returns None for None, ``noauth`` and ``inherit`` (the caller resolves
    inheritance). Raises ``UnsupportedAuthError`` (``unsupported auth type
    '<type>'``) for any other type this runner does not implement, or for an
    unsupported algorithm; ``CollectionFormatError`` for a malformed object.
    """
    if auth is None:
        return None
    if not isinstance(auth, Mapping):
        raise CollectionFormatError(f"auth must be an object, not {type(auth).__name__}")
    auth_type = auth.get("type")
    if auth_type in _NO_AUTH_TYPES:
        return None
    if not isinstance(auth_type, str):
        raise CollectionFormatError(f"auth 'type' must be a string, not {auth_type!r}")
    where = _BUILDERS.get(auth_type)
    if where is None:
        raise UnsupportedAuthError(f"unsupported auth type '{auth_type}'")
    signer_class = getattr(importlib.import_module(where[0]), where[1])
    signer: Signer = signer_class.from_params(AuthParams.from_auth(auth, resolve))
    return signer


def __getattr__(name: str) -> Any:
    """The signer classes, loaded on first use (``from runtime.auth import OAuth1Signer``)."""
    for module, class_name in _BUILDERS.values():
        if class_name == name:
            return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'runtime.auth' has no attribute {name!r}")
