"""Which mailbox, calendar or file a source URL reads — to tell that two crm-sync mailboxes would sync the same
source (pure: no I/O, no database).

Two mailboxes on one source fetch everything twice and each claims the other's items as its own ("mailboxes" in
the exports names both; SPEC §3: one item lists every mailbox that saw it). ``mailbox add`` and ``mailbox
source`` refuse that unless told it is meant (``--allow-shared-source``).

What names the source, per kind of URL:

- local sources (``maildir:``, ``mbox:``, ``eml:``, ``ics:``, ``vcf:``): the scheme and the normalised absolute
  path (``/srv/mail/alice/`` = ``/srv/mail/alice``; ``..`` and ``.`` resolved; symlinks are not followed);
- IMAP: the host, the port (a default port written or not is the same) and the user — not the folder list: two
  mailboxes on different folders of one account are one source (a deliberate split needs the flag);
- CalDAV and calendar feeds: the host, port, user and path without its trailing slash; for a feed also its
  query (a feed's parameters pick the calendar);
- EWS: the host and the mailbox read (``impersonate=`` or ``mailbox=``, else the login user);
- Graph: the tenant and the user in the path.

Host names, users and the scheme compare case-insensitively; paths case-sensitively (except Graph's user).
Other options (``timeout``, ``idle``, ``auth`` …) do not name the source.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, unquote, urlsplit

from sync_service.connectors.localpath import url_to_path
from sync_service.errors import ConfigError

LOCAL = frozenset({"maildir", "mbox", "eml", "ics", "vcf"})
DEFAULT_PORTS = {"imap": 143, "imaps": 993, "caldav": 80, "caldavs": 443, "ics+http": 80, "ics+https": 443}
_PATHLESS = frozenset({"imap", "imaps", "ews"})  # the path names no part of what is read

SourceKey = tuple[str, ...]


def source_key(url: str) -> SourceKey:
    """A value equal for two URLs that read the same source (see the module docstring)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme in LOCAL:
        try:
            path = str(url_to_path(url.strip()))
        except ConfigError:
            path = unquote(parts.path)
        return (scheme, os.path.normpath(path))
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:  # not a number: the connector refuses it; compare it as written
        port = None
    port_text = str(port or DEFAULT_PORTS.get(scheme) or "")
    user = unquote(parts.username or "").lower()
    path = "" if scheme in _PATHLESS else unquote(parts.path).rstrip("/")
    query = ""
    if scheme == "ews":
        options = {k.lower(): v for k, v in parse_qsl(parts.query)}
        user = (options.get("impersonate") or options.get("mailbox") or user).strip().lower()
    elif scheme == "graph":
        path = path.strip("/").lower()
    elif scheme.startswith("ics+"):
        query = "&".join(f"{k}={v}" for k, v in sorted(parse_qsl(parts.query, keep_blank_values=True)))
    return (scheme, host, port_text, user, path, query)


def same_source(a: str, b: str) -> bool:
    return source_key(a) == source_key(b)
