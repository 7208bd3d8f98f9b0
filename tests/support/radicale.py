"""A real Radicale CalDAV server for tests (the ``radicale`` pip package): 127.0.0.1, free port, temp dir.

Users live in a plain htpasswd file; each user owns the collections under ``/<user>/`` (``owner_only``
rights). ``client(user)`` is a caldav ``DAVClient`` for test set-up (make calendars, put / change / delete
events); the connector under test talks to the server on its own.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping

from tests.support.servers import ServerProcess

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


class RadicaleServer(ServerProcess):
    name = "radicale"
    log_files = ("radicale.log",)

    def __init__(self, users: Mapping[str, str]) -> None:
        super().__init__()
        self.users = dict(users)

    def start(self) -> RadicaleServer:
        self.boot()
        return self

    def unavailable(self) -> str | None:
        found = importlib.util.find_spec("radicale") is not None
        return None if found else "Radicale (pip package radicale, in the test extras)"

    def prepare(self) -> None:
        (self.base / "users").write_text("".join(f"{u}:{p}\n" for u, p in self.users.items()))
        (self.base / "config").write_text(_CONFIG.format(port=self.port, base=self.base))

    def command(self) -> list[str]:
        return [sys.executable, "-m", "radicale", "--config", str(self.base / "config")]

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
