"""Credentials sealed at rest in Redis, under the cluster's ``PMRUNNER_SECRET_KEY``.

What a run's workers must read in clear (its collection version, its
variable states) is sealed with Fernet (the ``cryptography`` package:
AES-128-CBC with an HMAC-SHA256, a timestamp and a random IV per value)
when a key is set, so neither a look into Redis nor its persistence files
(RDB, AOF) nor a replica shows a credential. Every process of a cluster
needs the same key; without one, values are stored as they are, and a
process without the key that meets a sealed value says so in one line.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from pmrunner.errors import ConfigurationError

SEALED_PREFIX = "sealed:v1:"
_NO_KEY = "Redis holds sealed run data, and PMRUNNER_SECRET_KEY is not set in this process"
_WRONG_KEY = "Redis holds run data sealed under another PMRUNNER_SECRET_KEY than this process's"


class Sealer:
    """Seals and opens text with a key derived from ``secret`` (no key: text stays as is).

    Parameters:
        secret: the cluster's ``PMRUNNER_SECRET_KEY`` (any text; its SHA-256
            is the key), or None.
    """

    def __init__(self, secret: str | None = None) -> None:
        self._fernet: Fernet | None = None
        if secret:
            digest = hashlib.sha256(secret.encode()).digest()
            self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    @property
    def sealing(self) -> bool:
        return self._fernet is not None

    def seal(self, text: str) -> str:
        """``text`` sealed, or ``text`` itself when no key is set."""
        if self._fernet is None:
            return text
        return SEALED_PREFIX + self._fernet.encrypt(text.encode()).decode("ascii")

    def seal_json(self, document: Any) -> str:
        """``document`` as JSON, sealed (or as plain JSON when no key is set)."""
        return self.seal(json.dumps(document))

    def open_json(self, value: str | bytes) -> Any:
        """The document of a value written by :meth:`seal_json` (sealed or not)."""
        return json.loads(self.open(value))

    def open(self, value: str | bytes) -> str:
        """The text of a sealed (or plain) value.

        Raises:
            ConfigurationError: the value is sealed and this process has no
                key, or another key.
        """
        text = value.decode() if isinstance(value, bytes) else value
        if not text.startswith(SEALED_PREFIX):
            return text
        if self._fernet is None:
            raise ConfigurationError(_NO_KEY)
        try:
            return self._fernet.decrypt(text[len(SEALED_PREFIX) :].encode("ascii")).decode()
        except InvalidToken:
            raise ConfigurationError(_WRONG_KEY) from None
