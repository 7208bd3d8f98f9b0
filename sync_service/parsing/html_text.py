"""Turn an HTML mail body into readable plain text (for activity notes and subject/keyword matching).

Uses the stdlib ``html.parser`` (fast, no dependency, tolerant of the broken HTML mail clients produce).
This is *not* a sanitiser: the dashboard sanitises HTML separately before showing it (SPEC §6).
"""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

# Content that is never shown to a reader.
_SKIPPED = frozenset({"script", "style", "head", "title"})
# Tags that may legitimately appear inside <head>; any other start tag means the author forgot </head>.
_HEAD_TAGS = frozenset({"title", "meta", "link", "style", "script", "base", "noscript", "template"})
_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "caption", "center", "dd", "div", "dl", "dt",
        "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
        "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "tfoot",
        "thead", "tr", "ul",
    }
)  # fmt: skip
_CELLS = frozenset({"td", "th"})
_WHITESPACE = re.compile(r"\s+")
_SPACES = re.compile(r"[^\S\n]+")  # whitespace except newlines (includes NBSP)
_BLANK_LINES = re.compile(r"\n{3,}")
_TAG = re.compile(r"<[^>]*>")
# One markup item: a comment (to "-->" or the end of input) or "<" up to the next ">" / "<" / end.
_MARKUP = re.compile(r"<!--.*?(?:-->|\Z)|<[^<>]*(?:>|(?=<)|\Z)", re.DOTALL)
# Invisible characters newsletters pad their preview text with (zero-width space/joiners, BOM, soft
# hyphen, combining grapheme joiner).
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\ufeff\u00ad\u034f\x00"))


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skip_depth = 0
        self._in_head = False
        self._pre_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._in_head and tag not in _HEAD_TAGS:
            self._in_head = False  # body content without </head>: do not swallow the whole message
        if tag == "pre":
            self._pre_depth += 1
        if tag == "head":
            self._in_head = True
        elif tag in _SKIPPED:
            self._skip_depth += 1
        elif tag == "br":
            self.chunks.append("\n")
        elif tag in _BLOCKS:
            self.chunks.append("\n- " if tag == "li" else "\n")
        elif tag in _CELLS:
            self.chunks.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <hr/>, <p/>: never opens a skipped region, even for <script/>.
        if tag == "br" or tag in _BLOCKS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._pre_depth = max(0, self._pre_depth - 1)
        if tag == "head":
            self._in_head = False
        elif tag in _SKIPPED:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCKS and tag != "li":  # the next item starts its own line
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_head or self._skip_depth:
            return
        # Line breaks in HTML source are plain whitespace; only <pre> keeps them as written.
        self.chunks.append(data.replace("\r", "") if self._pre_depth else _WHITESPACE.sub(" ", data))


def html_to_text(html: str) -> str:
    """Return the visible text of ``html``: paragraphs and line breaks kept, whitespace collapsed."""
    if not html:
        return ""
    parser = _TextExtractor()
    try:
        parser.feed(_defuse(html))
        parser.close()
        raw = "".join(parser.chunks)
    except Exception:  # html.parser has raised on pathological input in past releases; never fail a message
        raw = unescape(_TAG.sub(" ", html))
    return _tidy(raw)


def _defuse(html: str) -> str:
    """Neutralise markup html.parser would re-scan to the end of the input for every occurrence.

    html.parser is quadratic on unterminated constructs ("<a <a <a …", "<!--<!--…", "<![if x>…"): a 50 KB
    message took seconds. In one linear pass, a "<" that is not closed by ">" before the next "<" becomes
    text, and an unterminated comment (which hides the rest of the document in browsers too) is dropped.
    """

    def fix(match: re.Match[str]) -> str:
        token = match.group(0)
        if token.startswith("<!--"):
            return token if token.endswith("-->") and len(token) >= 7 else ""
        if not token.endswith(">") or (token.startswith("<![") and not token.endswith("]>")):
            return "&lt;" + token[1:]
        return token

    return _MARKUP.sub(fix, html)


def _tidy(text: str) -> str:
    text = text.translate(_INVISIBLE).replace("\r", "")
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    joined = "\n".join(lines)
    return _BLANK_LINES.sub("\n\n", joined).strip()
