"""Collection versions cached in Redis for the runs that use them, and only while they do.

A distributed run's steps load its collection by digest (messages stay
small). The collection holds whatever credentials its author wrote into it,
so a cached version lives only as long as a run needs it: each run that uses
it is recorded in a set next to it, the expiry covers the longest of their
deadlines, and when the last of them closes both keys go at once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import redis

from store.keys import Keys
from store.sealing import Sealer

JSON = dict[str, Any]

# KEYS: the collection, its users. ARGV: the collection's JSON, the run, the seconds it may need it.
# Expiries only grow, so one run never shortens the time another run needs.
_CACHE = """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('SADD', KEYS[2], ARGV[2])
local ttl = tonumber(ARGV[3])
for _, key in ipairs(KEYS) do
  if redis.call('TTL', key) < ttl then redis.call('EXPIRE', key, ttl) end
end
"""

# KEYS: the collection, its users. ARGV: the run that no longer needs it.
_RELEASE = """
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('SCARD', KEYS[2]) == 0 then return redis.call('DEL', KEYS[1], KEYS[2]) end
return 0
"""


def digest_of(collection: JSON) -> tuple[str, str]:
    """The canonical JSON text of a collection and its content digest."""
    text = json.dumps(collection, sort_keys=True, separators=(",", ":"))
    return text, hashlib.sha256(text.encode()).hexdigest()[:32]


class CollectionCache:
    """Collection versions in Redis, by digest, held by the runs that use them.

    Parameters:
        client: a Redis client.
        keys: key names.
        sealer: seals the versions at rest (``store.sealing``).
    """

    def __init__(self, client: redis.Redis, keys: Keys, sealer: Sealer | None = None) -> None:
        self.redis = client
        self.keys = keys
        self.sealer = sealer or Sealer()
        self._cache = client.register_script(_CACHE)
        self._release = client.register_script(_RELEASE)

    def hold(self, collection: JSON, run_id: str, seconds: float) -> str:
        """Cache ``collection`` for ``run_id`` for at most ``seconds``; return its digest."""
        text, digest = digest_of(collection)
        keys = [self.keys.collection(digest), self.keys.collection_users(digest)]
        self._cache(keys=keys, args=[self.sealer.seal(text), run_id, max(int(seconds), 1)])
        return digest

    def hold_ops(self, digest: str, run_id: str, seconds: float) -> list[tuple[str, ...]]:
        """What :meth:`hold` writes, as ``store.launch`` writes: the version's
        stored text is the launch's blob named after the version's key."""
        key, users, ttl = (
            self.keys.collection(digest),
            self.keys.collection_users(digest),
            str(max(int(seconds), 1)),
        )
        return [
            ("SETBLOB", key, key),
            ("SADD", users, run_id),
            ("EXPIREUP", key, ttl),
            ("EXPIREUP", users, ttl),
        ]

    def release(self, digest: str, run_id: str) -> bool:
        """``run_id`` no longer needs the version; True when it was the last and it is gone."""
        keys = [self.keys.collection(digest), self.keys.collection_users(digest)]
        return bool(self._release(keys=keys, args=[run_id]))

    def get(self, digest: str) -> JSON | None:
        raw = self.redis.get(self.keys.collection(digest))
        return json.loads(self.sealer.open(raw)) if raw else None
