"""A real Radicale CalDAV server for tests (the ``radicale`` pip package): 127.0.0.1, free port, temp dir.

Users live in a plain htpasswd file; each user owns the collections under ``/<user>/`` (``owner_only``
rights). ``client(user)`` is a caldav ``DAVClient`` for test set-up (make calendars, put / change / delete
events); the connector under test talks to the server on its own.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from tests.support.servers import free_port, missing, wait_for_port

_CONFIG = """[server]
hosts = 127.0.0.1:{port}
[auth]
type = htpasswd
htpasswd_filename = {base}/users
htpasswd_encryption = plain
[storage]
filesystem_folder = {base}/collections
[rights]
type = owner_only
[logging]
level = warning
"""


class RadicaleServer:
    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = dict(users)
        self.base = Path(tempfile.mkdtemp(prefix="crm-sync-radicale-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RadicaleServer:
        if importlib.util.find_spec("radicale") is None:
            missing("Radicale (pip package radicale, in the test extras)")
        (self.base / "users").write_text("".join(f"{u}:{p}\n" for u, p in self.users.items()))
        config = self.base / "config"
        config.write_text(_CONFIG.format(port=self.port, base=self.base))
        with open(self.base / "radicale.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "radicale", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port(self.port, timeout=30)
        except TimeoutError:
            self.stop()
            raise RuntimeError("Radicale did not start: " + (self.base / "radicale.log").read_text()[-2000:]) from None
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def url(self, user: str, path: str = "", scheme: str = "caldav") -> str:
        """The source URL of ``user``'s account (or of one of its collections, ``path``)."""
        return f"{scheme}://{user}@127.0.0.1:{self.port}/{user}/" + (f"{path.strip('/')}/" if path else "")

    def http_url(self, user: str) -> str:
        return f"http://127.0.0.1:{self.port}/{user}/"

    def client(self, user: str):  # type: ignore[no-untyped-def]  # caldav.DAVClient
        import caldav

        return caldav.DAVClient(
            url=self.http_url(user), username=user, password=self.users[user], timeout=30, enable_rfc6764=False
        )
