"""safe_filename: untrusted attachment names become harmless base names (SPEC §6)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync_service.parsing.filenames import safe_filename


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("/etc/shadow", "shadow"),
        ("C:\\x\\evil.exe", "evil.exe"),
        ("C:\\Users\\bob\\..\\..\\Windows\\system32\\cmd.exe", "cmd.exe"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("a\x00b.pdf", "ab.pdf"),
        ("in\x1bvoice\x7f.pdf", "invoice.pdf"),
        ("line\r\nbreak.txt", "line break.txt"),
        ("tab\there.txt", "tab here.txt"),
        ("  many    spaces   .doc", "many spaces .doc"),
        ("...hidden...", "hidden"),
        ("  . name . ", "name"),
        ("evil\u202egpj.exe", "evilgpj.exe"),  # right-to-left override would show "evilexe.jpg"
        ("zero\u200bwidth.txt", "zerowidth.txt"),
        ("Mu\u0308ller.pdf", "Müller.pdf"),  # NFD (macOS) → NFC
        ("Prüfbericht – Q3.pdf", "Prüfbericht – Q3.pdf"),
        ("見積書.xlsx", "見積書.xlsx"),
        ("broken\udce9.txt", "broken.txt"),  # lone surrogate from undecodable bytes
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


@pytest.mark.parametrize("name", [None, "", ".", "..", "...", "/", "\\", "../", "a/..", "   ", "\x00\x01", "\u202e"])
def test_empty_or_dot_names_become_the_default(name: str | None) -> None:
    assert safe_filename(name) == "attachment"
    assert safe_filename(name, default="file.bin") == "file.bin"


def test_long_name_is_capped_and_keeps_its_extension() -> None:
    name = "x" * 400 + ".pdf"
    result = safe_filename(name)
    assert len(result) == 150
    assert result == "x" * 146 + ".pdf"
    assert len(safe_filename("y" * 400, max_length=20)) == 20


def test_long_name_with_absurd_extension_is_cut_plainly() -> None:
    result = safe_filename("a." + "b" * 400, max_length=50)
    assert result == "a." + "b" * 48


def test_long_name_does_not_end_in_a_dot_or_space_after_cutting() -> None:
    result = safe_filename("word " * 100 + ".docx", max_length=30)
    assert len(result) <= 30 and result.endswith(".docx")
    assert not result[: -len(".docx")].endswith((" ", "."))


@given(st.text(max_size=500))
def test_any_text_gives_a_safe_name(name: str) -> None:
    result = safe_filename(name)
    assert result
    assert 0 < len(result) <= 150
    assert "/" not in result and "\\" not in result
    assert result not in (".", "..")
    assert not any(ord(ch) < 32 or ord(ch) == 127 for ch in result)
    assert result == result.strip(" .") or result == "attachment"
    result.encode("utf-8")  # storable: no lone surrogates
