"""A pmrunner command in its own process group, read as a person at a terminal reads it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path


def clean_env(data_dir: Path) -> dict[str, str]:
    """The environment without any ``PMRUNNER_*`` variable, with a private data folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMRUNNER_")}
    env["PMRUNNER_DATA_DIR"] = str(data_dir)
    return env


class Terminal:
    """A command whose output (stdout and stderr) goes to ``log``.

    Parameters:
        argv: the command.
        env: its environment.
        log: where its output is written.
        cwd: its working directory.
    """

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> None:
        self.log = log
        self.started = time.monotonic()
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_line(self, pattern: str, timeout: float) -> str:
        """The first output line matching ``pattern``; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.output().splitlines():
                if re.search(pattern, line):
                    return line
            if self.process.poll() is not None:
                raise AssertionError(f"exited with {self.process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no line {pattern!r} in {timeout} s:\n{self.output()}")
            time.sleep(0.1)

    def interrupt(self, timeout: float = 30) -> tuple[int, float]:
        """Ctrl-C as a terminal sends it (SIGINT to the process group); exit code and seconds."""
        if self.process.poll() is not None:
            return self.process.returncode, 0.0
        started = time.monotonic()
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"still running {timeout} s after Ctrl-C") from None
        return code, time.monotonic() - started

    def kill(self) -> None:
        kill_group(self.process)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process started with ``start_new_session`` and everything in its group."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    process.wait(10)
