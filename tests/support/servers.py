"""Start real servers for tests on 127.0.0.1, on free high ports, in temporary folders.

``ServerProcess`` is the common part (temp dir, free port, start / stop / restart / close, waiting for the port,
the log); ``PostgresServer`` and ``RedisServer`` here, ``DovecotServer`` (tests/support/dovecot.py) and
``RadicaleServer`` (tests/support/radicale.py) build on it.

A test that needs a server skips when its binaries are missing on a developer machine, but fails under
``CI=true`` (CI installs them: see .ci/run).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(what: str) -> None:
    """Skip (developer machine) or fail (CI) because ``what`` is not available."""
    if in_ci():
        pytest.fail(f"{what} is required under CI=true but is not available", pytrace=False)
    pytest.skip(f"{what} not available")


def _ephemeral_low(default: int = 32768) -> int:
    """The lowest port the kernel hands out to outgoing connections (Linux: ip_local_port_range)."""
    with contextlib.suppress(OSError, ValueError):
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    return default


def free_port() -> int:
    """A free port for a test's server, below the ephemeral range. A port the kernel picks (``bind(0)``) comes
    from the range outgoing connections use too: a client's connection made between this call and the server's
    bind (a worker reaching Redis, say) can take it ("address already in use")."""
    low = _ephemeral_low()
    if low > 11_000:
        for _ in range(200):
            port = random.randint(10_000, low - 1)
            with socket.socket() as s, contextlib.suppress(OSError):
                s.bind(("127.0.0.1", port))
                return port
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


class ServerProcess:
    """A server for tests: a temp dir (``base``), a free port on 127.0.0.1, a child process logging into ``base``.

    ``stop()`` stops it and keeps its files; ``restart()`` is stop + start on the same port and files (clients
    reconnect to the same address and find the same data); ``close()`` stops it and removes the files (also done
    at interpreter exit for a server that was never closed). Subclasses say what is needed (``unavailable``),
    write their configuration (``prepare``) and the command line (``command``); a server that daemonizes
    itself overrides ``launch`` / ``halt``. Their public ``start()`` calls ``boot()`` and returns what their
    callers use (a URL, or the server).
    """

    name = "server"
    log_files: tuple[str, ...] = ("log",)
    start_timeout = 30.0
    kill_on_stop = False  # True: SIGKILL, like a crash; False: SIGTERM, then SIGKILL after 20 s

    def __init__(self) -> None:
        # Not under pytest's tmp dir: that one is private to root, and a server may run as another user.
        self.base = Path(tempfile.mkdtemp(prefix=f"crm-sync-{self.name}-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._remove_files = weakref.finalize(self, shutil.rmtree, self.base, ignore_errors=True)

    # -- what subclasses provide -----------------------------------------------------------------------
    def unavailable(self) -> str | None:
        """What is missing to run this server (for ``missing()``), or None."""
        return None

    def prepare(self) -> None:
        """Write the configuration (called before every start; keep what a restart must find again)."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def launch(self) -> None:
        with open(self.base / self.log_files[-1], "ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)

    def halt(self) -> None:
        if self.process is None:
            return
        if self.kill_on_stop:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=20)
        self.process = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def boot(self) -> None:
        reason = self.unavailable()
        if reason is not None:
            missing(reason)
        self.prepare()
        self.launch()
        try:
            wait_for_port(self.port, timeout=self.start_timeout)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {self.log_tail()}") from None

    def stop(self) -> None:
        self.halt()

    def restart(self, downtime: float = 0.0) -> None:
        """Stop, stay down ``downtime`` seconds (clients meet a refused connection), start again."""
        self.stop()
        time.sleep(downtime)
        self.boot()

    def close(self) -> None:
        self.stop()
        self._remove_files()

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        for name in self.log_files:
            path = self.base / name
            if path.exists():
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def _pg_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


class PostgresServer(ServerProcess):
    """A throw-away PostgreSQL cluster. As root, it runs as the ``postgres`` system user (initdb refuses root).

    ``restart()`` stops it with ``pg_ctl -m fast`` (every session is terminated, as in an administrator's
    restart) and starts the same data directory on the same port."""

    name = "pg"

    def __init__(self) -> None:
        super().__init__()
        self.bindir = _pg_bindir()
        self.datadir = self.base / "pgdata"
        self._user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://crm@127.0.0.1:{self.port}/postgres"

    def start(self) -> str:
        self.boot()
        return self.url

    def _cmd(self, *args: str) -> list[str]:
        assert self.bindir is not None
        command = [str(self.bindir / args[0]), *args[1:]]
        return ["runuser", "-u", self._user, "--", *command] if self._user else command

    def unavailable(self) -> str | None:
        if self.bindir is None:
            return "PostgreSQL server binaries (Debian package postgresql)"
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return "a 'postgres' system user to run PostgreSQL as root"
            self._user = "postgres"
        return None

    def prepare(self) -> None:
        if self.datadir.exists():
            return
        if self._user:
            shutil.chown(self.base, self._user)
            os.chmod(self.base, 0o755)
        _run(self._cmd("initdb", "-D", str(self.datadir), "-U", "crm", "-A", "trust", "-E", "UTF8", "--no-sync"))

    def launch(self) -> None:  # pg_ctl daemonizes the server and waits (-w) until it accepts connections
        options = f"-h 127.0.0.1 -p {self.port} -k {self.base} -F -c fsync=off -c full_page_writes=off"
        _run(self._cmd("pg_ctl", "-D", str(self.datadir), "-o", options, "-l", str(self.base / "log"), "-w", "start"))

    def halt(self) -> None:
        if self.bindir is not None and (self.datadir / "postmaster.pid").exists():
            subprocess.run(
                self._cmd("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop"),
                capture_output=True,
                check=False,
            )


class RedisServer(ServerProcess):
    """A throw-away redis-server on 127.0.0.1: no persistence (``--save ''``), so a restart empties it, like a
    crash of a cache server would. ``restart()`` keeps the port, so clients reconnect to the same URL."""

    name = "redis"
    kill_on_stop = True  # like a crash: nothing is saved (and nothing would be: --save '')

    def __init__(self) -> None:
        super().__init__()
        self.binary = shutil.which("redis-server")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        self.boot()
        return self.url

    def unavailable(self) -> str | None:
        return None if self.binary else "redis-server (Debian package redis-server)"

    def command(self) -> list[str]:
        assert self.binary is not None
        command = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        return [*command, "--dir", str(self.base), "--daemonize", "no", "--loglevel", "warning"]


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
        )
