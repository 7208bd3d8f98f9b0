"""A loopback OAuth2 token endpoint for tests: the refresh-token grant of RFC 6749 §6, nothing else.

``POST /token`` with ``grant_type=refresh_token``, ``refresh_token``, ``client_id`` (and ``client_secret`` when
the server was given one) answers ``{"access_token", "token_type": "Bearer", "expires_in"}`` with the next name
of ``issue`` (so a test decides which tokens the IMAP server will accept: pre-register them with Dovecot's
``oauth_tokens``). Wrong client → 401 ``invalid_client``; an unknown or revoked refresh token → 400
``invalid_grant``; ``outage = N`` answers HTTP N (e.g. 503) until it is reset. With ``rotate=True`` every answer
carries a new refresh token and the old one stops working, as strict rotating providers do.
Every request's form is recorded in ``requests``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


class OAuthServer:
    def __init__(
        self,
        client_id: str,
        refresh_token: str,
        issue: Iterable[str],
        client_secret: str | None = None,
        expires_in: int = 3600,
        rotate: bool = False,
    ) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.refresh_tokens = {refresh_token}
        self.expires_in, self.rotate = expires_in, rotate
        self.outage: int | None = None
        self.requests: list[dict[str, str]] = []
        self._issue = iter(issue)
        self._rotations = 0
        self._mutex = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> OAuthServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                status, body = owner.answer(self.path, form)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def token_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def answer(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        with self._mutex:
            self.requests.append(form)
            if self.outage is not None:
                return self.outage, {"error": "temporarily_unavailable"}
            if path != "/token" or form.get("grant_type") != "refresh_token":
                return 400, {"error": "unsupported_grant_type"}
            if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
                return 401, {"error": "invalid_client", "error_description": "Client authentication failed."}
            if form.get("refresh_token") not in self.refresh_tokens:
                return 400, {"error": "invalid_grant", "error_description": "The refresh token is invalid or expired."}
            body: dict[str, object] = {
                "access_token": next(self._issue),
                "token_type": "Bearer",
                "expires_in": self.expires_in,
            }
            if self.rotate:
                self._rotations += 1
                fresh = f"rt-rotated-{self._rotations}"
                self.refresh_tokens = {fresh}
                body["refresh_token"] = fresh
            return 200, body

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
