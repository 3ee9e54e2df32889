"""kombu's Redis transport, with the per-message bookkeeping in one script call each.

With late acks, kombu files every message it delivers as unacknowledged
(``ZADD unacked_index`` + ``HSET unacked`` in a MULTI transaction) and
unfiles it on ack (``ZREM`` + ``HDEL``, another transaction); for each, it
first builds a new redis-py client (about 50 us of CPU: redis-py copies
its table of reply callbacks into every client). Those two steps were a
quarter of a worker's CPU per request. Here each is one Lua script call,
as atomic as the transaction (``tasks.liveness`` reads what it files: the
same keys, the same values), on a client the channel keeps; every other
use of a client by the channel gets that kept client too (redis-py clients
are thread-safe: each command takes a connection from the pool).

Every URL a connection shows (Celery's worker banner, its "Connected to"
and "Cannot connect to" lines) is the URL as given with only a password
that is there masked: kombu writes ``:**@`` into every Redis URL it builds,
also one without a password, which reads as if one were set and hidden.

Only kombu's plain Redis transport (``redis://``, ``rediss://``, a unix
socket) is adapted, and only without a global key prefix (pmrunner sets
none): anything else is kombu's as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from time import time
from typing import Any

import orjson
from celery.app.amqp import AMQP
from kombu.connection import Connection
from kombu.transport import redis as kombu_redis
from kombu.transport.virtual import base as virtual
from kombu.utils.json import dumps

# KEYS: unacked index, unacked hash. ARGV: delivery tag, time taken, message.
FILE_UNACKED = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
"""

# KEYS: unacked index, unacked hash. ARGV: delivery tag.
UNFILE_UNACKED = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""


def _dumps(document: Any) -> str:
    """JSON of a filed message: orjson (20 to 0.6 us for a step message), else kombu's.

    A message taken from Redis was JSON already; kombu's encoder is kept for
    anything orjson refuses (integers past 64 bits, non-string keys).
    """
    try:
        return orjson.dumps(document).decode()
    except TypeError:
        return str(dumps(document))  # type: ignore[no-untyped-call]


class ScriptedQoS(kombu_redis.QoS):
    """kombu's Redis ack emulation, filing and unfiling a message in one script call."""

    channel: RunChannel

    def append(self, message: Any, delivery_tag: Any) -> None:
        """File a delivered message as unacknowledged (what kombu's ``QoS.append`` writes)."""
        delivery = message.delivery_info
        raw = _dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        self.channel.unacked_scripts[0](
            keys=[self.unacked_index_key, self.unacked_key],
            args=[delivery_tag, repr(time()), raw],
            client=self.channel.kept_client,
        )
        virtual.QoS.append(self, message, delivery_tag)  # type: ignore[no-untyped-call]

    def ack(self, delivery_tag: Any) -> None:
        """Unfile an acknowledged message (kombu's ``QoS.ack``)."""
        self.channel.unacked_scripts[1](
            keys=[self.unacked_index_key, self.unacked_key],
            args=[delivery_tag],
            client=self.channel.kept_client,
        )
        virtual.QoS.ack(self, delivery_tag)  # type: ignore[no-untyped-call]


class RunChannel(kombu_redis.Channel):
    """kombu's Redis channel, with one kept client and the scripted ack emulation."""

    QoS = ScriptedQoS
    _kept: Any = None
    _scripts: tuple[Any, Any] | None = None

    @property
    def kept_client(self) -> Any:
        """The channel's synchronous client, built once (kombu builds one per use)."""
        if self._kept is None:
            self._kept = kombu_redis.Channel._create_client(self)  # type: ignore[no-untyped-call]
        return self._kept

    @property
    def unacked_scripts(self) -> tuple[Any, Any]:
        """The filing and unfiling scripts, registered once."""
        if self._scripts is None:
            client = self.kept_client
            self._scripts = (
                client.register_script(FILE_UNACKED),
                client.register_script(UNFILE_UNACKED),
            )
        return self._scripts

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        """``client``, else the kept client."""
        yield client or self.kept_client

    def _disconnect_pools(self) -> None:
        self._kept = None
        self._scripts = None
        super()._disconnect_pools()  # type: ignore[no-untyped-call]


class RunConnection(Connection):
    """A kombu connection whose plain Redis transport makes ``RunChannel`` channels."""

    def as_uri(self, include_password: Any = False, mask: Any = "**", *args: Any) -> str:
        """The connection's URL; a password, when there is one, is ``mask`` unless included.

        Parameters:
            include_password: show the password itself.
            mask: what stands for the password when it is not shown.
        """
        # Only the URL kombu builds from its parts masks unconditionally; a URL
        # it keeps as text (a socket, a transport that parses its own) is
        # already shown with only a password that is there masked.
        built_from_parts = not self.uri_prefix and not self.transport.can_parse_url
        nothing_to_hide = built_from_parts and not self.password
        return str(super().as_uri(include_password or nothing_to_hide, mask, *args))

    def create_transport(self) -> Any:
        transport = super().create_transport()  # type: ignore[no-untyped-call]
        options = transport.client.transport_options or {}
        if type(transport) is kombu_redis.Transport and not options.get("global_keyprefix"):
            transport.Channel = RunChannel
        return transport


class RunAMQP(AMQP):  # type: ignore[misc]
    """Celery's broker API, with ``RunConnection`` connections (``Celery(amqp=...)``)."""

    Connection = RunConnection
    BrokerConnection = RunConnection
