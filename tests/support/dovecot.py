"""A real Dovecot IMAP server for tests: 127.0.0.1, a free high port, Maildirs and state in a temp dir.

Users come from a passwd-file (plain passwords) and, when ``oauth_tokens`` is given, OAuth2 access tokens are
checked by Dovecot's ``oauth2`` passdb against a tiny token-info endpoint served on loopback by this class.
Works as root (mail owned by root, ``first_valid_uid = 0``) and unprivileged (everything runs as the caller).
Messages can be appended over IMAP (``append``) or written straight into the Maildir (``deliver``, fast
enough for 10,000 messages); Dovecot indexes new files on the next SELECT.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import subprocess
import threading
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import imap_tools

from tests.support.servers import ServerProcess, missing

CONFIG_TEMPLATE = Path(__file__).with_name("dovecot.conf.in")
DOVECOT_BINARIES = ("/usr/sbin/dovecot", "/usr/bin/doveadm")

_OAUTH_PASSDB = """passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {base}/oauth2.conf.ext
}}
"""


class _TokenInfo(BaseHTTPRequestHandler):
    """``GET /tokeninfo?access_token=T`` → ``{"email": user}`` for a known token, 401 otherwise."""

    tokens: Mapping[str, str] = {}

    def do_GET(self) -> None:
        token = (parse_qs(urlsplit(self.path).query).get("access_token") or [""])[0]
        header = self.headers.get("Authorization", "")
        if not token and header.lower().startswith("bearer "):
            token = header[7:]
        user = self.tokens.get(token)
        body = json.dumps({"email": user, "active": True} if user else {"error": "invalid_token"}).encode()
        self.send_response(200 if user else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


def _system_user(name: str) -> str:
    try:
        pwd.getpwnam(name)
    except KeyError:
        missing(f"the {name!r} system user (created by the Debian package dovecot-core) to run Dovecot as root")
    return name


class DovecotServer(ServerProcess):
    """``start()`` / ``stop()`` / ``restart()`` (same port, same Maildirs) / ``close()`` (removes the temp dir)."""

    name = "dovecot"
    log_files = ("dovecot.log", "dovecot.stdout")
    start_timeout = 20.0

    def __init__(self, users: Mapping[str, str], oauth_tokens: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.users = dict(users)
        self.oauth_tokens = dict(oauth_tokens or {})
        self.mail = self.base / "mail"
        self.config = self.base / "dovecot.conf"
        self._tokeninfo: ThreadingHTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> DovecotServer:
        self.boot()
        return self

    def unavailable(self) -> str | None:
        if all(os.access(b, os.X_OK) for b in DOVECOT_BINARIES):
            return None
        return "Dovecot (Debian package dovecot-imapd)"

    def prepare(self) -> None:
        if not self.config.exists():
            self._write_config()
        (self.base / "run").mkdir(exist_ok=True)

    def command(self) -> list[str]:
        return ["/usr/sbin/dovecot", "-F", "-c", str(self.config)]

    def close(self) -> None:
        super().close()
        if self._tokeninfo is not None:
            self._tokeninfo.shutdown()
            self._tokeninfo.server_close()
            self._tokeninfo = None

    @property
    def mail_owner(self) -> tuple[int, int]:
        """uid/gid that owns the mail: the caller, or ``nobody`` as root (Dovecot never accesses mail as root)."""
        if os.getuid() != 0:
            return os.getuid(), os.getgid()
        entry = pwd.getpwnam(_system_user("nobody"))
        return entry.pw_uid, entry.pw_gid

    # -- configuration ---------------------------------------------------------------------------------
    def _write_config(self) -> None:
        self.mail.mkdir(parents=True, exist_ok=True)
        uid, gid = self.mail_owner
        user = login_user = pwd.getpwuid(os.getuid()).pw_name
        if os.getuid() == 0:  # Dovecot's helper processes refuse to run as root: use the Debian package's users
            user, login_user = _system_user("dovecot"), _system_user("dovenull")
            os.chmod(self.base, 0o755)
            os.chown(self.mail, uid, gid)
        (self.base / "passwd").write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self.users.items()))
        oauth_mechanisms = oauth_passdb = ""
        if self.oauth_tokens:
            oauth_mechanisms, oauth_passdb = " xoauth2 oauthbearer", _OAUTH_PASSDB.format(base=self.base)
            (self.base / "oauth2.conf.ext").write_text(
                f"tokeninfo_url = http://127.0.0.1:{self._serve_tokeninfo()}/tokeninfo?access_token=\n"
                "username_attribute = email\n"
            )
        self.config.write_text(
            CONFIG_TEMPLATE.read_text().format(
                port=self.port,
                base=self.base,
                mail=self.mail,
                uid=uid,
                gid=gid,
                user=user,
                group=grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name,
                login_user=login_user,
                oauth_mechanisms=oauth_mechanisms,
                oauth_passdb=oauth_passdb,
            )
        )

    def _serve_tokeninfo(self) -> int:
        handler = type("TokenInfo", (_TokenInfo,), {"tokens": self.oauth_tokens})
        self._tokeninfo = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._tokeninfo.serve_forever, daemon=True).start()
        return int(self._tokeninfo.server_address[1])

    # -- mail ------------------------------------------------------------------------------------------
    def url(self, user: str, scheme: str = "imap", query: str = "") -> str:
        return f"{scheme}://{user}@127.0.0.1:{self.port}/" + (f"?{query}" if query else "")

    def client(self, user: str) -> imap_tools.MailBoxUnencrypted:
        """A logged-in imap-tools client for test set-up (APPEND, flags, expunge, moves)."""
        return imap_tools.MailBoxUnencrypted("127.0.0.1", self.port, timeout=30).login(user, self.users[user])

    def append(self, user: str, messages: Iterable[bytes], folder: str = "INBOX") -> None:
        with self.client(user) as box:
            for raw in messages:
                box.append(raw, folder, flag_set=())

    def maildir(self, user: str, folder: str = "INBOX") -> Path:
        """The Maildir of ``folder`` (created if needed); Dovecot's layout: ``~/Maildir`` root = INBOX."""
        root = self.mail / user
        path = root if folder == "INBOX" else root / f".{folder.replace('/', '.')}"
        for sub in ("cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        if os.getuid() == 0:
            uid, gid = self.mail_owner
            for directory in (root, path, path / "cur", path / "new", path / "tmp"):
                os.chown(directory, uid, gid)
        return path

    def deliver(self, user: str, messages: Iterable[bytes], folder: str = "INBOX") -> int:
        """Write messages straight into the Maildir's ``new/`` (what an MDA does); returns the count."""
        directory = self.maildir(user, folder)
        uid, gid = self.mail_owner
        count = 0
        for count, raw in enumerate(messages, start=1):
            name = f"{os.getpid()}.M{count}P{threading.get_ident() % 100000}.crm-test"
            tmp = directory / "tmp" / name
            tmp.write_bytes(raw)
            if os.getuid() == 0:
                os.chown(tmp, uid, gid)
            os.rename(tmp, directory / "new" / name)
        return count

    def doveadm(self, *args: str) -> str:
        done = subprocess.run(
            ["/usr/bin/doveadm", "-c", str(self.config), *args], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def set_uidvalidity(self, user: str, folder: str, value: int) -> None:
        self.doveadm("mailbox", "update", "-u", user, "--uid-validity", str(value), folder)
