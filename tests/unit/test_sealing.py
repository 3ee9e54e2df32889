"""Sealing run credentials at rest: round trips, plain values, missing and wrong keys."""

from __future__ import annotations

import pytest

from pmrunner.errors import ConfigurationError
from store.sealing import SEALED_PREFIX, Sealer, fingerprint


def test_sealed_text_opens_only_with_the_same_key() -> None:
    sealer = Sealer("cluster key")
    sealed = sealer.seal('{"token": "s3cr3t"}')
    assert sealed.startswith(SEALED_PREFIX) and "s3cr3t" not in sealed
    assert sealer.seal('{"token": "s3cr3t"}') != sealed  # a fresh IV each time
    assert Sealer("cluster key").open(sealed.encode()) == '{"token": "s3cr3t"}'
    with pytest.raises(ConfigurationError, match="another PMRUNNER_SECRET_KEY"):
        Sealer("other key").open(sealed)
    with pytest.raises(ConfigurationError, match="PMRUNNER_SECRET_KEY is not set"):
        Sealer().open(sealed)


def test_without_a_key_values_stay_as_they_are_and_plain_values_always_open() -> None:
    assert Sealer().seal("{}") == "{}"
    assert not Sealer().sealing and Sealer("k").sealing
    assert Sealer("k").open(b'{"a": 1}') == '{"a": 1}'


def test_a_fingerprint_names_a_key_without_showing_it() -> None:
    sealer = Sealer("cluster key")
    assert sealer.fingerprint == fingerprint("cluster key") != fingerprint("other key")
    assert sealer.fingerprint is not None and "cluster" not in sealer.fingerprint
    assert Sealer().fingerprint is None


def test_previous_keys_open_what_they_sealed_and_new_values_use_the_current_key() -> None:
    sealed_before = Sealer("old").seal("credential")
    rotated = Sealer("new", previous=["old"])
    assert rotated.open(sealed_before) == "credential"
    assert Sealer("new").open(rotated.seal("credential")) == "credential"
    assert rotated.fingerprints == (fingerprint("new"), fingerprint("old"))
