"""The egress policy where connections are made.

Every outgoing HTTP connection of pmrunner goes through ``requests`` and
urllib3: monitor requests and each redirect hop (``runtime.http_client``),
``pm.sendRequest`` (the same client), webhooks and the Postman API
(``egress_session``). ``EgressAdapter`` enforces a policy on all of them:

- before sending, the host of the URL is checked by name (patterns, and
  IP literals by address);
- when a connection is opened, its host is resolved once, every address is
  checked, and the socket connects to a checked address only, never to a
  name that could resolve again elsewhere (DNS rebinding).

A connection to a proxy (``HTTP(S)_PROXY``, or the policy's egress proxy)
goes to the proxy, which the operator configured; the target's name is
still checked, but its address is resolved by the proxy, so the proxy's own
policy governs it.
"""

from __future__ import annotations

import logging
import socket
from functools import lru_cache
from typing import Any, cast
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3 import PoolManager
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

from pmrunner.errors import EgressBlockedError
from runtime.egress import EgressPolicy

# urllib3 logs every request line, query string included, at DEBUG: a process
# logging at DEBUG would write the secrets of monitor URLs into its log.
logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)


class GuardedConnection(HTTPConnection):
    """A connection that opens its socket only to addresses the policy allows.

    Mixed in front of urllib3's connection classes (plain and TLS); the
    policy is a class attribute of the mixed class (``guard_pools``).
    """

    egress_policy: EgressPolicy = EgressPolicy()

    def _new_conn(self) -> socket.socket:
        policy = self.egress_policy
        if self.proxy is not None or hasattr(self, "_socks_options"):
            if self._tunnel_host:  # CONNECT through a proxy: the target is known by name
                policy.check_name(self._tunnel_host)
            return super()._new_conn()
        name = policy.check_name(self.host)
        addresses = self._checked_addresses(policy, name)
        host = self._dns_host
        failure: Exception | None = None
        try:
            for address in addresses:
                self._dns_host = address  # a literal: urllib3 connects without resolving again
                try:
                    return super()._new_conn()
                except NewConnectionError as error:
                    failure = error
        finally:
            self._dns_host = host
        raise cast(Exception, failure)

    def _checked_addresses(self, policy: EgressPolicy, name: Any) -> list[str]:
        """The host's addresses in resolver order, keeping those the policy allows.

        Raises:
            EgressBlockedError: every address is refused (naming the first refusal).
            NameResolutionError: the name does not resolve (as urllib3 says it).
        """
        host = self._dns_host.strip("[]")
        try:
            found = socket.getaddrinfo(host, self.port, allowed_gai_family(), socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise NameResolutionError(self.host, self, error) from error
        addresses = list(dict.fromkeys(str(entry[4][0]) for entry in found))
        refusal: EgressBlockedError | None = None
        allowed: list[str] = []
        for address in addresses:
            try:
                policy.check_address(address, name)
            except EgressBlockedError as error:
                refusal = refusal or error
                continue
            allowed.append(address)
        if not allowed:
            raise refusal or EgressBlockedError(f"blocked by egress policy: {host} has no address")
        return allowed


@lru_cache(maxsize=128)
def _guarded_pool(
    pool_class: type[HTTPConnectionPool], policy: EgressPolicy
) -> type[HTTPConnectionPool]:
    """``pool_class`` whose connections enforce ``policy``."""
    connection_class = pool_class.ConnectionCls
    bases: tuple[type, ...] = (connection_class,)  # already guarded: only the policy changes
    if not issubclass(connection_class, GuardedConnection):
        bases = (GuardedConnection, connection_class)
    guarded = type(f"Guarded{connection_class.__name__}", bases, {"egress_policy": policy})
    attributes = {"ConnectionCls": guarded}
    return cast(type[HTTPConnectionPool], type(pool_class.__name__, (pool_class,), attributes))


def guard_pools(manager: PoolManager, policy: EgressPolicy) -> PoolManager:
    """Make the pools ``manager`` creates from now on enforce ``policy``."""
    manager.pool_classes_by_scheme = {
        scheme: _guarded_pool(pool_class, policy)
        for scheme, pool_class in manager.pool_classes_by_scheme.items()
    }
    return manager


class EgressAdapter(HTTPAdapter):
    """A ``requests`` transport adapter that enforces an egress policy.

    Parameters:
        egress: the policy; its proxy, when set, carries every request.
        **kwargs: passed to ``HTTPAdapter``.
    """

    def __init__(self, egress: EgressPolicy | None = None, **kwargs: Any) -> None:
        self.egress = egress if egress is not None else EgressPolicy()
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        guard_pools(self.poolmanager, self.egress)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        known = proxy in self.proxy_manager
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        return manager if known else guard_pools(manager, self.egress)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        """Check the URL's host by name, then send (through the egress proxy, if set)."""
        self.egress.check_name(urlsplit(str(request.url)).hostname or "")
        if self.egress.proxy:
            kwargs["proxies"] = egress_proxies(self.egress)
        return super().send(request, *args, **kwargs)


def egress_proxies(policy: EgressPolicy) -> dict[str, str]:
    """The ``proxies`` mapping that sends everything through the policy's proxy."""
    return {"http": policy.proxy, "https": policy.proxy} if policy.proxy else {}


def egress_session(policy: EgressPolicy | None = None) -> requests.Session:
    """A ``requests.Session`` whose every connection enforces ``policy`` (default: defaults)."""
    session = requests.Session()
    adapter = EgressAdapter(policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
