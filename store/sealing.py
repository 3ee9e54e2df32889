"""Credentials sealed at rest in Redis, under the cluster's secret key.

What a run's workers must read in clear (its collection version, its
variable states), the poller's collections and environments, and monitors'
webhook URLs are sealed with Fernet (the ``cryptography`` package:
AES-128-CBC with an HMAC-SHA256, a timestamp and a random IV per value), so
neither a look into Redis nor its persistence files (RDB, AOF) nor a replica
shows a credential. Every process of a cluster needs the same key
(:mod:`store.secret_key` says where it comes from); older keys may be given
beside it while a cluster rotates, and open what they sealed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken

from pmrunner.errors import ConfigurationError

SEALED_PREFIX = "sealed:v1:"
_NO_KEY = "Redis holds sealed run data, and PMRUNNER_SECRET_KEY is not set in this process"
_WRONG_KEY = "Redis holds run data sealed under another PMRUNNER_SECRET_KEY than this process's"
# What a key's fingerprint is the keyed hash of: it shows which key a cluster uses, not the key.
_FINGERPRINT_MESSAGE = b"pmrunner secret key fingerprint v1"


def fingerprint(secret: str) -> str:
    """A short public name of ``secret``: an HMAC-SHA256 of a constant under it."""
    digest = hmac.new(secret.encode(), _FINGERPRINT_MESSAGE, hashlib.sha256).hexdigest()
    return digest[:16]


def _fernet(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))


class Sealer:
    """Seals and opens text with keys derived from ``secret`` (no key: text stays as is).

    Parameters:
        secret: the cluster's secret key (any text; its SHA-256 is the
            Fernet key), or None.
        previous: older keys, still accepted to open what they sealed (rotation).
    """

    def __init__(self, secret: str | None = None, previous: Sequence[str] = ()) -> None:
        self._fernets: list[Fernet] = []
        self.fingerprints: tuple[str, ...] = ()
        if secret:
            keys = [secret, *(key for key in previous if key and key != secret)]
            self._fernets = [_fernet(key) for key in keys]
            self.fingerprints = tuple(fingerprint(key) for key in keys)

    @property
    def sealing(self) -> bool:
        return bool(self._fernets)

    @property
    def fingerprint(self) -> str | None:
        """The fingerprint of the key this sealer seals with (None: it does not seal)."""
        return self.fingerprints[0] if self.fingerprints else None

    def seal(self, text: str) -> str:
        """``text`` sealed, or ``text`` itself when no key is set."""
        if not self._fernets:
            return text
        return SEALED_PREFIX + self._fernets[0].encrypt(text.encode()).decode("ascii")

    def seal_json(self, document: Any) -> str:
        """``document`` as JSON, sealed (or as plain JSON when no key is set)."""
        return self.seal(json.dumps(document))

    def open_json(self, value: str | bytes) -> Any:
        """The document of a value written by :meth:`seal_json` (sealed or not)."""
        return loads(self.open(value))

    def open(self, value: str | bytes) -> str:
        """The text of a sealed (or plain) value.

        Raises:
            ConfigurationError: the value is sealed and this process has no
                key, or another key.
        """
        return self.open_checked(value)[0]

    def open_checked(self, value: str | bytes) -> tuple[str, bool]:
        """The text of a sealed (or plain) value, and whether it is sealed as it would be now.

        A value in clear while this sealer seals, or sealed under a previous
        key, is not: a writer that keeps values it did not change (the
        catalog) seals those again.

        Raises:
            ConfigurationError: as :meth:`open`.
        """
        text = value.decode() if isinstance(value, bytes) else value
        if not text.startswith(SEALED_PREFIX):
            return text, not self._fernets
        if not self._fernets:
            raise ConfigurationError(_NO_KEY)
        token = text[len(SEALED_PREFIX) :].encode("ascii")
        for index, fernet in enumerate(self._fernets):
            try:
                return fernet.decrypt(token).decode(), index == 0
            except InvalidToken:
                continue
        raise ConfigurationError(_WRONG_KEY)


def loads(text: str | bytes) -> Any:
    """``json.loads``, several times faster (orjson) for what the run tasks read back.

    A finalizer reads every step's result and state of a run; orjson refuses
    only what ``json.dumps`` may write beyond JSON (NaN, Infinity), which
    ``json`` still reads.
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
