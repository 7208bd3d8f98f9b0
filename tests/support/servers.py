"""Start real servers for tests on 127.0.0.1, on free high ports, in temporary folders.

A test that needs a server skips when its binaries are missing on a developer machine, but fails under
``CI=true`` (CI installs them: see .ci/run).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(what: str) -> None:
    """Skip (developer machine) or fail (CI) because ``what`` is not available."""
    if in_ci():
        pytest.fail(f"{what} is required under CI=true but is not available", pytrace=False)
    pytest.skip(f"{what} not available")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _pg_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


class PostgresServer:
    """A throw-away PostgreSQL cluster. As root, it runs as the ``postgres`` system user (initdb refuses root)."""

    def __init__(self) -> None:
        self.bindir = _pg_bindir()
        # Not under pytest's tmp dir: that one is private to root, and the server may run as 'postgres'.
        self.base = Path(tempfile.mkdtemp(prefix="crm-sync-pg-"))
        self.datadir = self.base / "pgdata"
        self.port = free_port()
        self._user: str | None = None

    def _cmd(self, *args: str) -> list[str]:
        assert self.bindir is not None
        command = [str(self.bindir / args[0]), *args[1:]]
        return ["runuser", "-u", self._user, "--", *command] if self._user else command

    def start(self) -> str:
        if self.bindir is None:
            missing("PostgreSQL server binaries (Debian package postgresql)")
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                missing("a 'postgres' system user to run PostgreSQL as root")
            self._user = "postgres"
        self.base.mkdir(parents=True, exist_ok=True)
        if self._user:
            shutil.chown(self.base, self._user)
            os.chmod(self.base, 0o755)
        _run(self._cmd("initdb", "-D", str(self.datadir), "-U", "crm", "-A", "trust", "-E", "UTF8", "--no-sync"))
        options = f"-h 127.0.0.1 -p {self.port} -k {self.base} -F -c fsync=off -c full_page_writes=off"
        _run(self._cmd("pg_ctl", "-D", str(self.datadir), "-o", options, "-l", str(self.base / "log"), "-w", "start"))
        return f"postgresql+psycopg://crm@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        if self.bindir is not None and self.datadir.exists():
            subprocess.run(
                self._cmd("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "stop"),
                capture_output=True,
                check=False,
            )
        shutil.rmtree(self.base, ignore_errors=True)


class RedisServer:
    """A throw-away redis-server on 127.0.0.1: no persistence (``--save ''``), so a restart empties it, like a
    crash of a cache server would. ``restart()`` keeps the port, so clients reconnect to the same URL."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        self.base = Path(tempfile.mkdtemp(prefix="crm-sync-redis-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        if self.binary is None:
            missing("redis-server (Debian package redis-server)")
        assert self.binary is not None
        command = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        command += ["--dir", str(self.base), "--daemonize", "no", "--loglevel", "warning"]
        with open(self.base / "log", "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port)
        return self.url

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()  # like a crash: nothing is saved (and nothing would be: --save '')
            self.process.wait(timeout=30)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
        )
