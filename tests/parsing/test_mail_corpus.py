"""Golden fixtures (tests/data/mail with expected.json), the shared real-world corpus, and fuzzing.

The shared corpus lives outside the project (``../shared/corpus`` or ``$CRM_SHARED_CORPUS``) and is never
copied in; its tests skip where it is absent.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync_service.errors import ParseError
from sync_service.parsing.mime import parse_body, parse_headers
from sync_service.values import MessageBody, MessageHeaders

REPO_ROOT = Path(__file__).resolve().parents[2]
GOLDEN = REPO_ROOT / "tests" / "data" / "mail"
EXPECTED: dict[str, dict[str, Any]] = json.loads((GOLDEN / "expected.json").read_text("utf-8"))


def shared_corpus() -> Path:
    return Path(os.environ.get("CRM_SHARED_CORPUS") or REPO_ROOT.parent / "shared" / "corpus")


# ------------------------------------------------------------------------------------------- golden fixtures


def test_every_golden_fixture_has_expectations() -> None:
    assert sorted(p.name for p in GOLDEN.glob("*.eml")) == sorted(EXPECTED)
    assert len(EXPECTED) >= 12


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_fixture(name: str) -> None:
    raw = (GOLDEN / name).read_bytes()
    expected = EXPECTED[name]
    if expected.get("parse_error"):
        with pytest.raises(ParseError):
            parse_headers(raw)
        with pytest.raises(ParseError):
            parse_body(raw)
        return
    check_headers(parse_headers(raw), expected)
    check_body(parse_body(raw), expected)


def check_headers(headers: MessageHeaders, expected: dict[str, Any]) -> None:
    simple = {
        "message_id": headers.message_id,
        "subject": headers.subject,
        "date": headers.date.isoformat() if headers.date else None,
        "conversation_id": headers.conversation_id,
        "content_type": headers.content_type,
        "has_calendar": headers.has_calendar,
        "automated": headers.automated_reason,
        "from": [a.email for a in headers.from_],
        "to": [a.email for a in headers.to],
        "cc": [a.email for a in headers.cc],
        "in_reply_to": list(headers.in_reply_to),
        "references": list(headers.references),
    }
    for key, actual in simple.items():
        if key in expected:
            assert actual == expected[key], key
    names = {a.email: a.name for a in (*headers.from_, *headers.recipients)}
    for email, name in expected.get("names", {}).items():
        assert names.get(email) == name, email


def check_body(body: MessageBody, expected: dict[str, Any]) -> None:
    for snippet in expected.get("text_contains", []):
        assert snippet in body.text
    for snippet in expected.get("text_excludes", []):
        assert snippet not in body.text
    if "html" in expected:
        assert (body.html is not None) == expected["html"]
    if "attachments" in expected:
        assert [[a.filename, a.media_type] for a in body.attachments] == expected["attachments"]
    by_name = {a.filename: a for a in body.attachments}
    for filename, start in expected.get("attachment_starts", {}).items():
        assert by_name[filename].data.startswith(start.encode("utf-8"))
    if "calendar_parts" in expected:
        assert len(body.calendar_parts) == expected["calendar_parts"]
    for snippet in expected.get("calendar_contains", []):
        assert any(snippet.encode() in part for part in body.calendar_parts)
    assert body.problems == ()


# ------------------------------------------------------------------------------------------- shared corpus


def test_shared_mail_corpus_parses() -> None:
    folder = shared_corpus() / "mail"
    if not folder.is_dir():
        pytest.skip(f"shared corpus not found at {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("LICENSE"))
    parsed, rejected = [], []
    for path in files:
        raw = path.read_bytes()
        try:
            headers, body = parse_headers(raw), parse_body(raw)
        except ParseError as exc:  # anything else escaping is a bug and fails the test
            rejected.append(f"{path.relative_to(folder)}: {exc}")
            continue
        assert isinstance(headers, MessageHeaders) and isinstance(body, MessageBody)
        for text in (headers.subject, body.text, *(a.name for a in headers.from_)):
            text.encode("utf-8")  # storable
        parsed.append(path)
    print(f"\nshared mail corpus: {len(files)} files, {len(parsed)} parsed, {len(rejected)} ParseError")
    for line in rejected:
        print("  rejected:", line)
    assert len(files) >= 100
    assert len(parsed) >= 0.95 * len(files)


# ------------------------------------------------------------------------------------------- fuzzing


def parse_or_reject(raw: bytes) -> None:
    for parse in (parse_headers, parse_body):
        with contextlib.suppress(ParseError):  # the one exception allowed to escape
            parse(raw)


FIXTURES = [p.read_bytes() for p in sorted(GOLDEN.glob("*.eml")) if p.stat().st_size]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_random_bytes_only_raise_parse_error(raw: bytes) -> None:
    parse_or_reject(raw)


@st.composite
def mutated_fixture(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(FIXTURES)))
    for _ in range(draw(st.integers(1, 12))):
        position = draw(st.integers(0, max(0, len(data) - 1)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice"]))
        if action == "flip" and data:
            data[position] = draw(st.integers(0, 255))
        elif action == "insert":
            chunk = draw(st.sampled_from([b"\r\n", b"\r\n\r\n", b"=?", b"?=", b"--", b"\x00", b"\xff", b";", b'"']))
            data[position:position] = chunk + draw(st.binary(max_size=20))
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 40))]
        elif action == "truncate":
            del data[position:]
        else:
            data[position:position] = draw(st.sampled_from(FIXTURES))[: draw(st.integers(0, 400))]
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_fixture())
def test_mutated_fixtures_only_raise_parse_error(raw: bytes) -> None:
    parse_or_reject(raw)
