"""The fast MIME split builds exactly the tree the stdlib feed parser builds, or declines.

Every check compares against ``BytesParser(policy=compat32)`` on the same bytes: golden fixtures, the shared
real-world corpus, generated benchmark mail, and hypothesis-generated multiparts with odd line breaks,
preambles, nested parts and broken delimiters. ``parse_body`` must give the same ``MessageBody`` either way.
"""

from __future__ import annotations

import itertools
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync_service.errors import ParseError
from sync_service.parsing import mime
from sync_service.parsing.mime_split import header_end, parse_header_block, split_message
from tests.parsing.test_mail_corpus import FIXTURES, mutated_fixture, shared_corpus

_STDLIB = BytesParser(policy=compat32)


def tree(msg: Message) -> Any:
    """What a parse decides: every part's raw headers and its payload (parts of a multipart, in order)."""
    payload = msg.get_payload()
    if isinstance(payload, list):
        return (list(msg.raw_items()), [tree(part) for part in payload])
    return (list(msg.raw_items()), payload, msg.get_unixfrom())


def check_same_tree(raw: bytes) -> bool:
    """True when the split handled ``raw``; then its tree must be the stdlib's."""
    raw = raw.lstrip(b"\r\n")
    split = split_message(raw)
    if split is None:
        return False
    assert tree(split) == tree(_STDLIB.parsebytes(raw))
    return True


def check_same_header_block(raw: bytes) -> bool:
    """True when the header block reader handled the block of ``raw``; then it must read what the stdlib does."""
    head = raw.lstrip(b"\r\n")
    head = head[: header_end(head)]
    fast = parse_header_block(head)
    if fast is None:
        return False
    stdlib = BytesHeaderParser(policy=compat32).parsebytes(head)
    assert (list(fast.raw_items()), fast.get_unixfrom()) == (list(stdlib.raw_items()), stdlib.get_unixfrom())
    return True


def stdlib_body(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as patch:
        patch.setattr(mime, "split_message", lambda _raw: None)
        patch.setattr(mime, "parse_header_block", lambda _raw: None)
        return body_or_error(raw)


def body_or_error(raw: bytes) -> Any:
    try:
        return mime.parse_headers(raw), mime.parse_body(raw)
    except ParseError as error:
        return ("ParseError", str(error))


def check_same_body(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """``parse_headers`` and ``parse_body`` give the same values with the fast paths and without."""
    assert body_or_error(raw) == stdlib_body(raw, monkeypatch)
    check_same_header_block(raw)


# ------------------------------------------------------------------------------------------- real mail


def test_golden_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    handled = [check_same_tree(raw) for raw in FIXTURES]
    for raw in FIXTURES:
        check_same_body(raw, monkeypatch)
    assert sum(handled) >= len(FIXTURES) // 2  # the fast path is really taken for ordinary mail


def test_shared_corpus(monkeypatch: pytest.MonkeyPatch) -> None:
    folder = shared_corpus() / "mail"
    if not folder.is_dir():
        pytest.skip(f"shared corpus not found at {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("LICENSE"))
    handled = 0
    for path in files:
        raw = path.read_bytes()
        handled += check_same_tree(raw)
        check_same_body(raw, monkeypatch)
    assert handled >= len(files) // 2


def test_generated_benchmark_mail(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.corpus import CORPUS_END, SPAN, CorpusSpec
    from bench.mailplan import MailGenerator

    spec = CorpusSpec(messages=400)
    mails = MailGenerator(spec.crm(), spec.seed, start=CORPUS_END - SPAN, end=CORPUS_END, count=spec.messages)
    handled = 0
    for mail in mails:
        handled += check_same_tree(mail.data)
        check_same_body(mail.data, monkeypatch)
    assert handled == spec.messages  # generated mail is well formed: all of it takes the fast path


# ------------------------------------------------------------------------------------------- shapes


def test_declines_what_it_does_not_handle() -> None:
    declined = [
        b"Content-Type: multipart/mixed\r\n\r\nno boundary\r\n",
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\nno close delimiter\r\n',
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\nno delimiter at all\r\n',
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n--b\r\n\r\nx\r\n--b--\r\n',  # back to back
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n'
        b"Subject: inner\r\n\r\nhi\r\n--b--\r\n",
        b'Content-Type: multipart/digest; boundary="b"\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n',
        b"Subject: a\r\nnot a header line\r\n\r\nbody\r\n",
        b"Subject: a\rFrom: b@example.com\r\n\r\nbody\r\n",  # a bare CR breaks lines for the stdlib
    ]
    for raw in declined:
        assert split_message(raw) is None, raw


def test_a_nested_multipart_with_crlf_and_lf_lines() -> None:
    raw = (
        b'From: a@example.com\nContent-Type: multipart/mixed; boundary="outer"\n\npreamble\n'
        b'--outer\nContent-Type: multipart/alternative; boundary="inner"\n\n'
        b"--inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n\r\n--inner\r\n"
        b"Content-Type: text/html\r\n\r\n<p>html</p>\r\n--inner--\r\nepilogue\n"
        b"--outer  \nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0=\n"
        b"--outerX not a delimiter\nnor is this --outer\n--outer--\n"
    )
    assert check_same_tree(raw)
    parts = [part.get_content_type() for part in split_message(raw).walk()]  # type: ignore[union-attr]
    assert parts == ["multipart/mixed", "multipart/alternative", "text/plain", "text/html", "application/pdf"]


_LINE_BREAKS = st.sampled_from([b"\r\n", b"\n"])
_WORDS = st.sampled_from([b"hello", b"--", b"--b", b"--b--", b"=?utf-8?q?x?=", b"\xe9t\xe9", b"", b"  ", b"a:b"])


@st.composite
def multipart(draw: st.DrawFn, depth: int = 0) -> bytes:
    eol = draw(_LINE_BREAKS)
    boundary = draw(st.sampled_from([b"b", b"=_part_1", b"b'(+_,-./:=?)", b"outer" * depth]))
    boundary = boundary + str(depth).encode()
    lines = [
        b"Content-Type: multipart/"
        + draw(st.sampled_from([b"mixed", b"alternative"]))
        + b'; boundary="'
        + boundary
        + b'"',
        b"",
    ]
    if draw(st.booleans()):
        lines.append(b"preamble " + draw(_WORDS))
    for _ in range(draw(st.integers(0, 3))):
        lines.append(b"--" + boundary + draw(st.sampled_from([b"", b" ", b"\t "])))
        if depth < 2 and draw(st.integers(0, 4)) == 0:
            lines.append(draw(multipart(depth + 1)))
            continue
        if draw(st.booleans()):
            lines.append(b"Content-Type: " + draw(st.sampled_from([b"text/plain", b"text/html", b"image/png"])))
        if draw(st.booleans()):
            lines.append(b"Content-Disposition: attachment; filename=" + draw(st.sampled_from([b"a.txt", b"\xe9.pdf"])))
        if draw(st.integers(0, 5)):
            lines.append(b"")
        near_misses = st.sampled_from([b"x--" + boundary, b"--" + boundary + b"x", b"--" + boundary + b"--x"])
        lines.extend(draw(_WORDS | near_misses) for _ in range(draw(st.integers(0, 4))))
    if draw(st.integers(0, 5)):
        lines.append(b"--" + boundary + b"--" + draw(st.sampled_from([b"", b" "])))
        if draw(st.booleans()):
            lines.append(b"epilogue " + draw(_WORDS))
    return eol.join(lines) + draw(st.sampled_from([eol, b""]))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(multipart())
def test_generated_multiparts(raw: bytes) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        check_same_tree(b"From: a@example.com\r\n" + raw)
        check_same_body(b"From: a@example.com\r\n" + raw, monkeypatch)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_fixture())
def test_mutated_fixtures(raw: bytes) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        check_same_tree(raw)
        check_same_body(raw, monkeypatch)


def test_generated_multiparts_take_the_fast_path_often() -> None:
    """The strategy above must exercise the split, not only its refusals."""
    handled = 0
    for example in itertools.islice(_examples(), 200):
        handled += check_same_tree(b"From: a@example.com\r\n" + example)
    assert handled >= 40


def _examples() -> Any:
    seen: list[bytes] = []

    @settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(multipart())
    def collect(raw: bytes) -> None:
        seen.append(raw)

    collect()
    return iter(seen)


_HEADER_LINES = st.sampled_from(
    [b"From: Ann <ann@example.com>", b"To: b@example.com,\r\n\tc@example.com", b"Subject: =?utf-8?q?caf=C3=A9?=",
     b"  folded", b"\tfolded", b" ", b"From someone Mon Jan 1", b": no name", b"no colon", b"X-8bit: \xe9\xff",
     b"X-CR: a\rb", b"Received: from x\r\n by y", b"Bad Name: v", b"X-Empty:", b"X-Tab:\t\tv \t", b""]
)  # fmt: skip


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_HEADER_LINES, max_size=8), _LINE_BREAKS, st.sampled_from([b"", b"\r\n", b"\n", b"\r\nbody"]))
def test_generated_header_blocks(lines: list[bytes], eol: bytes, end: bytes) -> None:
    raw = eol.join(lines) + eol + end
    check_same_header_block(raw)
    with pytest.MonkeyPatch.context() as monkeypatch:
        check_same_body(raw, monkeypatch)


def test_generated_header_blocks_take_the_fast_path() -> None:
    assert check_same_header_block(b"From: Ann <ann@example.com>\r\nSubject: x\r\n y\r\n\r\nbody")
    assert check_same_header_block(b"From someone Mon Jan 1\nTo: b@example.com\n\n")
    for raw in (b" first is a continuation\n\n", b"To: b\nno colon\n\n", b"To: b\nFrom late\n\n", b"A: a\rb\n\n"):
        assert not check_same_header_block(raw), raw
