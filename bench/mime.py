"""Render MIME messages as the mail clients of a real mailbox write them, fast and byte-for-byte reproducibly.

Messages are assembled as text (not through ``email.message``): the benchmark corpus needs tens of thousands
of them, with fixed boundaries and no clock or host name leaking in. The shapes follow what Outlook, Gmail
and common MTAs produce: a chain of ``Received`` headers, DKIM / ARC signatures, RFC 2047 encoded names and
subjects, ``multipart/mixed`` → ``multipart/alternative`` (→ ``multipart/related`` with an inline logo),
quoted-printable text in UTF-8 or ISO-8859-1, base64 attachments, ``text/calendar`` invitation parts.
"""

from __future__ import annotations

import base64
import binascii
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

NL = "\n"  # Maildir files hold LF line endings (the delivery agent strips the CR of the wire format)


@dataclass(frozen=True, slots=True)
class Part:
    """One MIME entity: its header lines and its already-encoded body (or sub-parts for a multipart)."""

    headers: tuple[tuple[str, str], ...]
    body: str = ""
    parts: tuple[Part, ...] = ()
    boundary: str = ""

    def render(self) -> str:
        head = "".join(f"{name}: {value}{NL}" for name, value in self.headers)
        return head + NL + self.render_body()

    def render_body(self) -> str:
        if not self.parts:
            return self.body
        chunks = ["This is a multi-part message in MIME format." + NL]
        for part in self.parts:
            chunks.append(f"{NL}--{self.boundary}{NL}{part.render()}")
        chunks.append(f"{NL}--{self.boundary}--{NL}")
        return "".join(chunks)


@dataclass
class Message:
    """Top-level header fields followed by the root part's own headers and body."""

    headers: list[tuple[str, str]] = field(default_factory=list)

    def render(self, root: Part) -> bytes:
        head = "".join(f"{name}: {value}{NL}" for name, value in [*self.headers, ("MIME-Version", "1.0")])
        return (head + root.render()).encode("utf-8")


def encoded_word(text: str, rng: random.Random | None = None) -> str:
    """RFC 2047 for non-ASCII text (B or Q encoding, as senders differ); ASCII is returned unchanged."""
    if text.isascii():
        return text
    raw = text.encode("utf-8")
    if rng is not None and rng.random() < 0.5:
        q = binascii.b2a_qp(raw, header=True).decode("ascii").replace("?", "=3F")
        return f"=?UTF-8?Q?{q}?="
    return f"=?UTF-8?B?{base64.b64encode(raw).decode('ascii')}?="


def address(name: str, email: str, rng: random.Random | None = None) -> str:
    if not name:
        return email
    if not name.isascii():
        return f"{encoded_word(name, rng)} <{email}>"
    if any(c in name for c in ",.'\"()"):
        return f'"{name}" <{email}>'
    return f"{name} <{email}>"


def address_list(people: Sequence[tuple[str, str]], rng: random.Random | None = None) -> str:
    return f",{NL} ".join(address(name, email, rng) for name, email in people)


def rfc2822(when: datetime, offset_minutes: int) -> str:
    local = when.astimezone(timezone(timedelta(minutes=offset_minutes)))
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return local.strftime("%a, %d %b %Y %H:%M:%S ") + f"{sign}{hours:02d}{minutes:02d}"


def fold(value: str, width: int = 76) -> str:
    """Fold a long structured value (signatures, references) at spaces / every ``width`` characters."""
    out, line = [], ""
    for token in value.split(" "):
        while len(token) > width:
            if line:
                out.append(line)
                line = ""
            out.append(token[:width])
            token = token[width:]
        if line and len(line) + 1 + len(token) > width:
            out.append(line)
            line = token
        else:
            line = f"{line} {token}" if line else token
    if line:
        out.append(line)
    return f"{NL}\t".join(out)


def hex_id(rng: random.Random, n: int) -> str:
    return rng.randbytes(n).hex().upper()


def b64_blob(rng: random.Random, n: int) -> str:
    return base64.b64encode(rng.randbytes(n)).decode("ascii")


def received_chain(
    rng: random.Random, sender_domain: str, recipient: str, when: datetime, hops: int
) -> list[tuple[str, str]]:
    """``Received`` headers, newest first, each hop a few seconds before the next."""
    chain: list[tuple[str, str]] = []
    stamp = when + timedelta(seconds=hops * 3)
    hosts = [("mx1.northwind-sales.example", "mail-gw.northwind-sales.example")]
    hosts += [(f"relay{i}.{sender_domain}", f"out{i}.{sender_domain}") for i in range(1, hops)]
    for by, src in hosts[:hops]:
        ip = f"203.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        value = (
            f"from {src} ({src} [{ip}]){NL}\tby {by} (Postfix) with ESMTPS id {hex_id(rng, 5)}{NL}"
            f"\tfor <{recipient}>; {rfc2822(stamp, 0)}"
        )
        chain.append(("Received", value))
        stamp -= timedelta(seconds=rng.randint(1, 4))
    return chain


def signature_headers(rng: random.Random, domain: str, when: datetime) -> list[tuple[str, str]]:
    """DKIM-Signature, ARC seal and Authentication-Results as large providers add them (~1.5 KB)."""
    stamp = int(when.timestamp())
    dkim = (
        f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s=selector{rng.randint(1, 2)}; t={stamp}; "
        f"h=from:to:cc:subject:date:message-id:mime-version:content-type; bh={b64_blob(rng, 32)}; "
        f"b={b64_blob(rng, 256)}"
    )
    seal = f"i=1; a=rsa-sha256; t={stamp}; cv=none; d={domain}; s=arc-2024; b={b64_blob(rng, 256)}"
    results = (
        f"mx1.northwind-sales.example;{NL}\tdkim=pass header.d={domain} header.s=selector1;{NL}"
        f"\tspf=pass (northwind-sales.example: domain of {domain} designates sender) smtp.mailfrom={domain};"
        f"{NL}\tdmarc=pass (p=QUARANTINE) header.from={domain}"
    )
    return [
        ("ARC-Seal", fold(seal)),
        ("DKIM-Signature", fold(dkim)),
        ("Authentication-Results", results),
    ]


def qp(text: str, charset: str) -> str:
    """Quoted-printable with soft line breaks at 76 columns; the text's own line breaks stay."""
    return binascii.b2a_qp(text.encode(charset), istext=True).decode("ascii")


def text_part(text: str, rng: random.Random, subtype: str = "plain") -> Part:
    """A text part: 7bit when ASCII with short lines, else quoted-printable (UTF-8, or Latin-1 when it fits)."""
    if text.isascii() and subtype == "plain":
        return Part(
            (("Content-Type", f'text/{subtype}; charset="us-ascii"'), ("Content-Transfer-Encoding", "7bit")),
            text,
        )
    charset = "utf-8"
    if rng.random() < 0.3:
        try:
            text.encode("iso-8859-1")
            charset = "iso-8859-1"
        except UnicodeEncodeError:
            pass
    return Part(
        (("Content-Type", f'text/{subtype}; charset="{charset}"'), ("Content-Transfer-Encoding", "quoted-printable")),
        qp(text, charset),
    )


def base64_lines(data: bytes) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return NL.join(encoded[i : i + 76] for i in range(0, len(encoded), 76)) + NL


def attachment_part(filename: str, media_type: str, data: bytes, rng: random.Random, *, inline_id: str = "") -> Part:
    if filename.isascii():
        name_params = f'name="{filename}"'
        disposition_name = f'filename="{filename}"'
    else:  # RFC 2231 for the parameter, RFC 2047 in name= (as Outlook and Thunderbird both still write)
        quoted = "".join(
            c if c.isalnum() and c.isascii() else "%" + "%".join(f"{b:02X}" for b in c.encode("utf-8"))
            for c in filename
        )
        name_params = f'name="{encoded_word(filename, rng)}"'
        disposition_name = f"filename*=utf-8''{quoted}"
    headers: list[tuple[str, str]] = [("Content-Type", f"{media_type}; {name_params}")]
    if inline_id:
        headers += [("Content-ID", f"<{inline_id}>"), ("Content-Disposition", f"inline; {disposition_name}")]
    else:
        headers.append(("Content-Disposition", f"attachment; {disposition_name}; size={len(data)}"))
    headers.append(("Content-Transfer-Encoding", "base64"))
    return Part(tuple(headers), base64_lines(data))


def multipart(subtype: str, boundary: str, parts: Sequence[Part], extra: str = "") -> Part:
    return Part(
        (("Content-Type", f'multipart/{subtype};{NL}\tboundary="{boundary}"{extra}'),),
        parts=tuple(parts),
        boundary=boundary,
    )


def html_document(paragraphs: Sequence[str], *, style: str = "outlook") -> str:
    """HTML as mail clients write it: Outlook's Word HTML (verbose) or a Gmail-style ``div`` body."""
    from html import escape

    if style == "outlook":
        head = (
            '<html xmlns:o="urn:schemas-microsoft-com:office:office"><head>'
            '<meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
            "<style><!-- @font-face {font-family:Calibri;} p.MsoNormal, li.MsoNormal, div.MsoNormal "
            '{margin:0cm; font-size:11.0pt; font-family:"Calibri",sans-serif;} '
            "a:link, span.MsoHyperlink {color:#0563C1; text-decoration:underline;} "
            ".MsoChpDefault {mso-style-type:export-only;} @page WordSection1 {size:612.0pt 792.0pt;} "
            "div.WordSection1 {page:WordSection1;} --></style></head>"
            '<body lang="EN-US" link="#0563C1" vlink="#954F72"><div class="WordSection1">'
        )
        body = "".join(
            f'<p class="MsoNormal"><span style="font-size:11.0pt">{escape(p)}</span></p>{NL}'
            f'<p class="MsoNormal"><o:p>&nbsp;</o:p></p>{NL}'
            for p in paragraphs
        )
        return f"{head}{NL}{body}</div></body></html>{NL}"
    body = "".join(f"<div>{escape(p)}</div><div><br></div>{NL}" for p in paragraphs)
    return f'<div dir="ltr">{NL}{body}</div>{NL}'
