"""Where a process's secret key comes from, and one key per Redis.

In this order: ``PMRUNNER_SECRET_KEY``; the file ``PMRUNNER_SECRET_KEY_FILE``
names; the file ``secret-key`` in the data directory, made on first use
(32 random bytes, readable by its owner only). Every process that touches
run data seals with it, so Redis never holds a credential in clear.

Redis keeps the key's fingerprint (:func:`store.sealing.fingerprint`, a keyed
hash of a constant, never the key) under ``<prefix>sealing:fingerprint``. A
process whose key has another fingerprint refuses to start, so a host that
was not given the cluster's key fails at once, in one line, instead of
failing every step it takes. A process that also holds the stored key as a
previous one (a rotation) moves the fingerprint to its own key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

import redis

from pmrunner.errors import ConfigurationError
from store.sealing import Sealer

KEY_FILE_NAME = "secret-key"
FINGERPRINT_KEY = "sealing:fingerprint"


def default_key_file(data_dir: Path) -> Path:
    """The key file made on first use: ``<data dir>/secret-key``."""
    return data_dir / KEY_FILE_NAME


def secret_key(given: str | None, key_file: Path | None, data_dir: Path) -> str:
    """The process's key: ``given``, else ``key_file``'s text, else the data directory's file.

    Raises:
        ConfigurationError: the key file cannot be read or made, or is empty.
    """
    if given:
        return given
    if key_file is not None:
        return _read(key_file)
    path = default_key_file(data_dir)
    if not path.exists():
        _create(path)
    return _read(path)


def _read(path: Path) -> str:
    try:
        key = path.read_text().strip()
    except OSError as error:
        raise ConfigurationError(f"secret key file {path}: {error.strerror or error}") from None
    if not key:
        raise ConfigurationError(f"secret key file {path} is empty")
    return key


def _create(path: Path) -> None:
    """Make a key file, atomically: processes starting together all read the one that won.

    The key is written to a private temporary file that is then linked to
    its name, which fails when another process linked first: nobody ever
    reads a half-written file, and no key replaces another.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret-key-")  # 0600
        try:
            with os.fdopen(descriptor, "w") as stream:
                stream.write(secrets.token_urlsafe(32) + "\n")
                stream.flush()
                os.fsync(stream.fileno())
            # Another process made it first: its key is the one.
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    except OSError as error:
        raise ConfigurationError(
            f"cannot make the secret key file {path}: {error.strerror or error}; "
            "set PMRUNNER_SECRET_KEY or PMRUNNER_SECRET_KEY_FILE"
        ) from None


def claim_fingerprint(client: redis.Redis, prefix: str, sealer: Sealer) -> None:
    """Record the sealer's key as this Redis's key, or refuse a key that is not it.

    Raises:
        ConfigurationError: Redis is used with another key (one line, both
            fingerprints, what to do).
    """
    mine = sealer.fingerprint
    if mine is None:
        return
    name = prefix + FINGERPRINT_KEY
    if client.set(name, mine, nx=True):
        return
    raw = client.get(name)
    stored = raw.decode() if isinstance(raw, bytes) else raw
    if stored is None:  # deleted in between: claim it again
        client.set(name, mine, nx=True)
    elif stored != mine and stored in sealer.fingerprints:
        client.set(name, mine)  # a rotation: this process seals with the newer key
    elif stored != mine:
        raise ConfigurationError(
            f"this Redis is used with another secret key (fingerprint {stored}, this "
            f"process's {mine}); give every process the same PMRUNNER_SECRET_KEY "
            f"(or, if that key is lost for good, delete {name}: runs in flight are lost)"
        )
