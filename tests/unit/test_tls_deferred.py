"""The default trust is loaded on the first TLS connection, not before."""

from __future__ import annotations

import ssl
import sys

import pytest
from requests.utils import DEFAULT_CA_BUNDLE_PATH

from runtime.options import TLSOptions
from runtime.transport import TRUST_VARIABLES, TrustSource, _trusting_context, trust_sources

pytestmark = pytest.mark.skipif(
    sys.platform in ("darwin", "win32"), reason="the OS verifies there (truststore)"
)


def loaded_authorities(context: ssl.SSLContext) -> int:
    """CA certificates in the context's store, without making it load anything."""
    return int(ssl.SSLContext.cert_store_stats(context)["x509_ca"])


def test_the_default_trust_waits_for_the_first_handshake() -> None:
    context = _trusting_context(())
    assert loaded_authorities(context) == 0  # a run that sends no HTTPS never loads it
    context.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname="example.test")
    assert loaded_authorities(context) > 10
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert len(context.get_ca_certs()) == loaded_authorities(context)  # loaded once


def test_files_named_by_a_user_are_loaded_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # So that a bad one stops the run before it starts, as it always did.
    for variable in TRUST_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", DEFAULT_CA_BUNDLE_PATH)
    sources = tuple(trust_sources(TLSOptions()))
    assert sources == (TrustSource("SSL_CERT_FILE", sources[0].path),)
    assert loaded_authorities(_trusting_context(sources)) > 10
