"""Sources that try to leak the mailbox secret through their errors (SPEC §6: never shown, logged or stored).

- ``EchoingImapServer``: a loopback IMAP server that refuses every login and echoes what the client sent in its
  ``NO`` answer — the ``LOGIN`` arguments (IMAP-quoted) or the ``AUTHENTICATE`` response (base64 SASL), as
  some real servers do.
- ``LeakyConnector`` (``leaky:///?fail=permanent|transient|unexpected&form=raw|…``): a connector whose
  listing fails with a message carrying its secret in one of the forms libraries put it in. Registered through
  ``CRM_EXTRA_CONNECTORS=leaky=tests.support.leaky:LeakyConnector``.
"""

from __future__ import annotations

import base64
import json
import socketserver
import threading
from collections.abc import Iterator, Sequence
from types import TracebackType
from urllib.parse import parse_qs, quote_plus, urlsplit

from sync_service.connectors.base import ChangePage, ItemRef, RawItem
from sync_service.errors import PermanentSourceError, TransientSourceError

SCHEME_ENTRY = "leaky=tests.support.leaky:LeakyConnector"


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self._send("* OK fake IMAP ready")
        while line := self.rfile.readline():
            tag, _, rest = line.decode("utf-8", "replace").rstrip("\r\n").partition(" ")
            command, _, args = rest.partition(" ")
            command = command.upper()
            if command == "CAPABILITY":
                self._send("* CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2", f"{tag} OK done")
            elif command == "LOGIN":
                self.server.logins.append(args)  # type: ignore[attr-defined]
                self._send(f"{tag} NO [AUTHENTICATIONFAILED] bad credentials: {args}")
            elif command == "AUTHENTICATE":
                self._send("+ ")
                response = self.rfile.readline().decode("ascii", "replace").strip()
                self._send(f"{tag} NO [AUTHENTICATIONFAILED] bad credentials: {response}")
            elif command == "LOGOUT":
                self._send("* BYE", f"{tag} OK bye")
                return
            else:
                self._send(f"{tag} BAD unknown command")

    def _send(self, *lines: str) -> None:
        self.wfile.write("".join(f"{line}\r\n" for line in lines).encode("utf-8"))


class EchoingImapServer:
    """``with EchoingImapServer() as server:`` — listens on 127.0.0.1 on a free port until the block ends.
    ``logins``: the arguments of every ``LOGIN`` received, as sent (``"alice" "password"``)."""

    def __init__(self) -> None:
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self.logins: list[str] = []
        self._server.logins = self.logins  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="echoing-imap", daemon=True)

    def url(self, user: str = "alice", query: str = "folders=INBOX") -> str:
        return f"imap://{user}@127.0.0.1:{self.port}/?{query}"

    def __enter__(self) -> EchoingImapServer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def leak(secret: str, form: str) -> str:
    """``secret`` as a library might quote it in an error message."""
    if form == "json":  # the credentials of a JSON secret, quoted one by one (as an HTTP library quotes a form)
        data = json.loads(secret)
        return f"refresh_token={quote_plus(data['refresh_token'])}&client_secret={data['client_secret']}"
    if form == "base64":
        return base64.b64encode(secret.encode()).decode()
    if form == "bytes":
        return repr([secret.encode()])
    return secret


class LeakyConnector:
    needs_secret = True

    def __init__(self, url: str, secret: str | None = None) -> None:
        params = {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}
        self.fail, self.form, self.secret = params.get("fail", "permanent"), params.get("form", "raw"), secret or ""

    def folders(self) -> Sequence[str]:
        return ["INBOX"]

    def list_changes(self, folder: str, cursor: str | None, limit: int = 500) -> ChangePage:
        text = f"the server said: {leak(self.secret, self.form)} (end)"
        if self.fail == "transient":
            raise TransientSourceError(f"busy: {text}")
        if self.fail == "unexpected":
            raise RuntimeError(f"a bug: {text}")
        raise PermanentSourceError(f"refused: {text}")

    def fetch(self, folder: str, refs: Sequence[ItemRef]) -> Iterator[RawItem]:
        return iter(())

    def close(self) -> None:
        pass
