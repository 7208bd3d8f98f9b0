"""A Maildir message's external id is its bare unique key — no ``./``, no ``new/`` or ``cur/`` — in the root, in
``cur/`` and in subfolders. The id is a stored key (the cursor's snapshot, the raw item, its quarantine entry):
a ``new/`` → ``cur/`` move must not change it, so the directory can never be part of it. (The ``./999.…`` a
quarantine listing may show is the folder ``"."`` joined to the id by the display, not the id.)"""

from __future__ import annotations

from pathlib import Path

from sync_service.connectors.maildir import MaildirConnector
from sync_service.connectors.snapshot import decode_state

MESSAGE = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: s\r\n\r\nbody\r\n"


def _folder(path: Path) -> Path:
    for sub in ("new", "cur", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def test_external_ids_are_the_bare_unique_keys(tmp_path: Path) -> None:
    root = _folder(tmp_path / "md")
    (root / "new" / "999.malformed.demo").write_bytes(MESSAGE)
    (root / "cur" / "1000.read.demo:2,S").write_bytes(MESSAGE)
    (_folder(root / ".Sent") / "cur" / "77.sent.demo:2,RS").write_bytes(MESSAGE)
    conn = MaildirConnector(f"maildir://{root}")
    assert conn.folders() == [".", "Sent"]

    page = conn.list_changes(".", None)
    assert sorted(r.external_id for r in page.upserts) == ["1000.read.demo", "999.malformed.demo"]
    sent = conn.list_changes("Sent", None)
    assert [r.external_id for r in sent.upserts] == ["77.sent.demo"]

    # the cursor's snapshot is keyed by the same ids, whichever directory a message is in
    assert page.next_cursor.startswith("md3.")
    base, delta, rest = page.next_cursor.removeprefix("md3.").split("|")
    keys = {*decode_state(base)[0], *decode_state(delta)[0], *decode_state(rest)[0]}
    assert keys == {"1000.read.demo", "999.malformed.demo"}
