"""The mailbox of one rep, generated message by message (a stream: only the last few hundred threads are kept).

The mix (weights per 100 messages) follows a sales rep's real mailbox — most mail is correspondence with CRM
contacts, the rest what the skip rules of SPEC §3 exist for:

| kind | share | what it exercises |
|---|---|---|
| ``crm`` | 58 | threads with contacts (In-Reply-To, References, Thread-Index), inbound and sent, CCs, [OPP-n] |
| ``colleague`` | 4 | an unknown person at an account's domain (or a subdomain): auto-created contact |
| ``lead`` | 3 | mail with a lead |
| ``invitation`` | 4 | ``text/calendar`` REQUEST / CANCEL parts (Outlook and Google shapes) |
| ``newsletter`` | 9 | List-Id / List-Unsubscribe / Precedence: bulk, HTML-heavy |
| ``automated`` | 3 | Auto-Submitted notifications |
| ``ooo`` | 1 | out-of-office replies from contacts |
| ``internal`` | 10 | rep ↔ rep |
| ``private`` | 8 | personal mail with public-provider addresses nobody in the CRM has |

About a fifth of the messages carry attachments of several sizes (0.5–12 KB raw, several types, RFC 2231
names); sizes are 5–22 KB per message (a triangular distribution around 8 KB). Every 997th message is damaged
(no sender and no recipient), as a real mailbox has a few.
"""

from __future__ import annotations

import base64
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bench import mime, vocab
from bench.crm import Account, Crm, Person, ascii_slug
from bench.mime import NL, Message, Part

KINDS = ("crm", "colleague", "lead", "invitation", "newsletter", "automated", "ooo", "internal", "private")
WEIGHTS = (58, 4, 3, 4, 9, 3, 1, 10, 8)
MIN_SIZE, MAX_SIZE, MODE_SIZE = 5 * 1024, 22 * 1024, 8 * 1024
DAMAGED_EVERY = 997
SENT = "Sent"


@dataclass(frozen=True, slots=True)
class Mail:
    kind: str
    folder: str  # "" for the inbox (the Maildir root), "Sent" for sent mail
    unread: bool
    when: datetime
    data: bytes
    attachments: int


@dataclass
class Thread:
    category: str
    subject: str
    people: list[Person]  # external (or internal, for rep ↔ rep) participants; the first is the main one
    account: Account | None = None
    refs: list[str] = field(default_factory=list)
    quote: list[str] = field(default_factory=list)  # paragraphs of the last message, quoted by a reply
    last_from: tuple[str, str] = ("", "")
    outlook: bool = False
    index_root: bytes = b""


class MailGenerator:
    """Yields ``count`` messages dated evenly between ``start`` and ``end`` (oldest first)."""

    def __init__(self, crm: Crm, seed: int, *, start: datetime, end: datetime, count: int, stream: str = "mail"):
        self.crm, self.count, self.stream = crm, count, stream
        self.rng = random.Random(f"{seed}:{stream}")
        self.start, self.step = start, (end - start) / max(1, count)
        self.owner = crm.owner
        self.threads: dict[str, deque[Thread]] = {k: deque(maxlen=200) for k in ("crm", "internal", "private", "lead")}
        self.invites: deque[tuple[str, str, Person, datetime]] = deque(maxlen=100)
        self.known = {e for a in crm.accounts for p in a.contacts for e in p.emails}
        friends = random.Random(f"{seed}:friends")
        self.friends = [
            Person(
                f,
                la,
                (f"{ascii_slug(f)}.{ascii_slug(la)}{friends.randint(1, 99)}@{friends.choice(vocab.PUBLIC_DOMAINS)}",),
            )
            for f, la in ((friends.choice(vocab.FIRST_NAMES), friends.choice(vocab.LAST_NAMES)) for _ in range(80))
        ]
        self.active = [a for a in crm.accounts if a.contacts]

    def __iter__(self) -> Iterator[Mail]:
        for i in range(self.count):
            when = self.start + self.step * (i + self.rng.uniform(0.05, 0.9))
            if i % DAMAGED_EVERY == DAMAGED_EVERY // 2:
                yield self._damaged(i, when)
                continue
            kind = self.rng.choices(KINDS, weights=WEIGHTS)[0]
            yield getattr(self, f"_{kind}")(when)

    # ------------------------------------------------------------------------------------------ choices

    def _account(self) -> Account:
        """Some accounts are far busier than others (a few key accounts, a long tail)."""
        return self.active[int(len(self.active) * self.rng.random() ** 2.2)]

    def _recent(self, category: str, chance: float) -> Thread | None:
        threads = self.threads[category]
        if threads and self.rng.random() < chance:
            return threads[-1 - min(len(threads) - 1, int(self.rng.expovariate(1 / 12)))]
        return None

    def _size(self, low: int = MIN_SIZE, high: int = MAX_SIZE, mode: int = MODE_SIZE) -> int:
        return int(self.rng.triangular(low, high, mode))

    def _message_id(self, domain: str, outlook: bool) -> str:
        rng = self.rng
        if outlook:
            prefix = rng.choice(("DM6PR", "AM0PR", "VI1PR", "BN8PR"))
            host = f"{prefix}{rng.randint(1, 19):02d}MB{rng.randint(1000, 9999)}"
            local = f"{host}{mime.hex_id(rng, 14)}"
            region = f"{rng.choice(('namprd', 'eurprd'))}{rng.randint(1, 20):02d}"
            return f"<{local}@{host}.{region}.prod.outlook.com>"
        if domain in vocab.PUBLIC_DOMAINS:
            token = base64.b64encode(rng.randbytes(33), altchars=b"+_").decode("ascii")
            return f"<CA{token}@mail.gmail.com>"
        return f"<{rng.randint(10**9, 10**10)}.{mime.hex_id(rng, 6).lower()}@mail.{domain}>"

    # ------------------------------------------------------------------------------------------ kinds

    def _crm(self, when: datetime) -> Mail:
        thread = self._recent("crm", 0.55)
        if thread is None:
            account = self._account()
            main = self.rng.choice(account.contacts)
            people = [main]
            if self.rng.random() < 0.3 and len(account.contacts) > 1:
                people.append(self.rng.choice([c for c in account.contacts if c is not main]))
            subject = self.rng.choice(vocab.SUBJECTS).format(p=self.rng.choice(vocab.PRODUCTS))
            if account.opportunities and self.rng.random() < 0.05:
                subject = f"[OPP-{self.rng.choice(account.opportunities).id}] {subject}"
            thread = self._new_thread("crm", subject, people, account)
        return self._thread_mail("crm", thread, when, outbound_chance=0.4)

    def _colleague(self, when: datetime) -> Mail:
        account = self._account()
        first, last = self.rng.choice(vocab.FIRST_NAMES), self.rng.choice(vocab.LAST_NAMES)
        domain = self.rng.choice(account.domains)
        if self.rng.random() < 0.3:
            domain = f"{self.rng.choice(('eu', 'us', 'mail', 'sales'))}.{domain}"
        email = f"{ascii_slug(first)}.{ascii_slug(last)}@{domain}"
        while email in self.known:
            email = email.replace("@", f"{self.rng.randint(2, 9)}@", 1)
        people = [Person(first, last, (email,), self.rng.choice(vocab.JOB_TITLES))]
        if self.rng.random() < 0.5:
            people.append(self.rng.choice(account.contacts))
        subject = self.rng.choice(vocab.SUBJECTS).format(p=self.rng.choice(vocab.PRODUCTS))
        thread = self._new_thread("crm", subject, people, account)
        return self._thread_mail("colleague", thread, when, outbound_chance=0.0)

    def _lead(self, when: datetime) -> Mail:
        thread = self._recent("lead", 0.4)
        if thread is None:
            lead = self.rng.choice(self.crm.leads)
            subject = self.rng.choice(
                (
                    "Great meeting you at the expo",
                    "Your enquiry",
                    "Intro call?",
                    "Brochure you asked for",
                    "Follow-up from the webinar",
                )
            )
            thread = self._new_thread("lead", subject, [lead.person], None)
        return self._thread_mail("lead", thread, when, outbound_chance=0.5)

    def _internal(self, when: datetime) -> Mail:
        thread = self._recent("internal", 0.4)
        if thread is None:
            rep = self.rng.choice(self.crm.reps[1:])
            subject = self.rng.choice(vocab.INTERNAL_SUBJECTS).format(q=self.rng.randint(1, 4))
            thread = self._new_thread("internal", subject, [rep], None, outlook=True)
        return self._thread_mail("internal", thread, when, outbound_chance=0.45)

    def _private(self, when: datetime) -> Mail:
        thread = self._recent("private", 0.3)
        if thread is None:
            thread = self._new_thread(
                "private", self.rng.choice(vocab.PRIVATE_SUBJECTS), [self.rng.choice(self.friends)], None
            )
        return self._thread_mail("private", thread, when, outbound_chance=0.3)

    def _new_thread(
        self, category: str, subject: str, people: list[Person], account: Account | None, outlook: bool | None = None
    ) -> Thread:
        use_outlook = account.outlook if outlook is None and account is not None else bool(outlook)
        thread = Thread(category, subject, people, account, outlook=use_outlook, index_root=self.rng.randbytes(22))
        self.threads[category].append(thread)
        return thread

    def _ooo(self, when: datetime) -> Mail:
        thread = self._recent("crm", 1.0)
        account = thread.account if thread is not None and thread.account else self._account()
        contact = thread.people[0] if thread is not None else self.rng.choice(account.contacts)
        subject = f"Automatic reply: {thread.subject if thread else 'Your message'}"
        headers = self._envelope(contact, [self.owner], [], subject, when, account, outlook=True)
        headers += [("Auto-Submitted", "auto-replied"), ("X-Auto-Response-Suppress", "All")]
        if thread is not None and thread.refs:
            headers += [("In-Reply-To", thread.refs[-1])]
        text = (
            f"I am out of the office until {(when + timedelta(days=5)):%A, %d %B} with limited access to "
            f"email.{NL}For urgent matters please contact our office.{NL}{NL}{contact.name}{NL}"
        )
        paragraphs = [*text.split(NL), *vocab.prose(self.rng, 1200)]
        body = mime.multipart(
            "alternative",
            self._boundary(),
            [
                mime.text_part(NL.join(paragraphs) + NL, self.rng),
                mime.text_part((mime.html_document(paragraphs)), self.rng, "html"),
            ],
        )
        return self._finish("ooo", headers, body, when, inbound=True)

    def _newsletter(self, when: datetime) -> Mail:
        name, domain = self.rng.choice(vocab.NEWSLETTERS)
        sender = Person(name, "", (f"news@{domain}",))
        issue = self.rng.randint(100, 999)
        subject = f"{name} #{issue}: {self.rng.choice(vocab.PRODUCTS)} trends"
        headers = self._envelope(sender, [self.owner], [], subject, when, None, display=name)
        campaign = mime.hex_id(self.rng, 8).lower()
        headers += [
            ("List-Id", f"{name} <news.{domain}>"),
            ("List-Unsubscribe", f"<mailto:unsubscribe@{domain}?subject={campaign}>, <https://{domain}/u/{campaign}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("Precedence", "bulk"),
            ("X-Campaign-Id", campaign),
        ]
        paragraphs = vocab.prose(self.rng, self._size(8 * 1024, MAX_SIZE, 14 * 1024) // 4)
        rows = "".join(
            f'<tr><td style="padding:16px;font-family:Arial,sans-serif;font-size:14px;color:#333333">{p}'
            f'<br><a href="https://{domain}/r/{campaign}/{i}" style="color:#0066cc">Read more</a></td></tr>'
            f"{NL}"
            for i, p in enumerate(paragraphs)
        )
        html = (
            f'<html><body style="margin:0;background:#f4f4f4"><table width="100%" cellpadding="0" '
            f'cellspacing="0" role="presentation"><tr><td><img src="https://{domain}/logo.png" width="200">'
            f"</td></tr>{rows}</table></body></html>"
        )
        text = NL.join(NL.join(vocab.wrap(p)) + NL for p in paragraphs)
        body = mime.multipart(
            "alternative", self._boundary(), [mime.text_part(text, self.rng), mime.text_part((html), self.rng, "html")]
        )
        return self._finish("newsletter", headers, body, when, inbound=True)

    def _automated(self, when: datetime) -> Mail:
        name, email = self.rng.choice(vocab.NOTIFIERS)
        sender = Person(name, "", (email,))
        subject = f"[{name}] Update on item #{self.rng.randint(1000, 99999)}"
        headers = self._envelope(sender, [self.owner], [], subject, when, None, display=name)
        headers += [("Auto-Submitted", "auto-generated"), ("X-Auto-Response-Suppress", "All")]
        text = NL.join(NL.join(vocab.wrap(p)) + NL for p in vocab.prose(self.rng, self._size(5 * 1024, 9 * 1024) // 2))
        return self._finish("automated", headers, mime.text_part(text, self.rng), when, inbound=True)

    def _invitation(self, when: datetime) -> Mail:
        rng = self.rng
        cancel = bool(self.invites) and rng.random() < 0.15
        if cancel:
            uid, topic, contact, start = self.invites[rng.randrange(len(self.invites))]
            account = self._account_of(contact)
            sequence, method = 1, "CANCEL"
        else:
            account = self._account()
            contact = rng.choice(account.contacts)
            call = rng.random() < 0.25
            topic = f"{'Call' if call else 'Meeting'}: {rng.choice(vocab.PRODUCTS)} with {account.name}"
            day = (when + timedelta(days=rng.randint(1, 20))).replace(minute=0, second=0, microsecond=0)
            start = day.replace(hour=rng.randint(7, 16))
            uid = f"{mime.hex_id(rng, 16)}@{account.domains[0]}"
            sequence, method = 0, "REQUEST"
            self.invites.append((uid, topic, contact, start))
        outbound = not cancel and rng.random() < 0.25
        organizer, attendee = (self.owner, contact) if outbound else (contact, self.owner)
        ics = _ics(method, uid, topic, organizer, [attendee], start, sequence, when)
        subject = f"{'Canceled' if cancel else 'Invitation'}: {topic}"
        headers = self._envelope(organizer, [attendee], [], subject, when, account, outlook=account.outlook)
        text = f"{topic}{NL}When: {start:%A, %d %B %Y %H:%M} UTC{NL}{NL}" + NL.join(
            vocab.wrap(" ".join(vocab.prose(rng, 600)))
        )
        calendar = Part(
            (
                ("Content-Type", f'text/calendar; charset="utf-8"; method={method}'),
                ("Content-Transfer-Encoding", "base64"),
            ),
            mime.base64_lines(ics.encode()),
        )
        alternative = mime.multipart(
            "alternative",
            self._boundary(),
            [
                mime.text_part(text + NL, rng),
                mime.text_part(
                    mime.html_document(text.split(NL), style="outlook" if account.outlook else "gmail"), rng, "html"
                ),
                calendar,
            ],
        )
        if account.outlook:
            root = alternative
        else:  # Google adds the same calendar again as an invite.ics attachment
            root = mime.multipart(
                "mixed",
                self._boundary(),
                [alternative, mime.attachment_part("invite.ics", "application/ics", ics.encode(), rng)],
            )
        return self._finish("invitation", headers, root, when, inbound=not outbound)

    def _damaged(self, index: int, when: datetime) -> Mail:
        raw = (
            f"Received: from unknown (HELO localhost) by mx1.{mime.NL}"
            f"X-Spam-Score: 9.{index % 10}{NL}Subject: =?utf-8?B?broken{NL}Date: {mime.rfc2822(when, 0)}{NL}{NL}"
            + "\x00garbage "
            * 600
        )
        return Mail("damaged", "", False, when, raw.encode("latin-1"), 0)

    # ------------------------------------------------------------------------------------------ assembly

    def _account_of(self, person: Person) -> Account:
        domain = person.email.rpartition("@")[2]
        for account in self.active:
            if domain in account.domains:
                return account
        return self.active[0]

    def _boundary(self) -> str:
        return f"----=_Part_{mime.hex_id(self.rng, 6)}_{self.rng.randint(10**8, 10**9)}"

    def _thread_mail(self, kind: str, thread: Thread, when: datetime, *, outbound_chance: float) -> Mail:
        rng = self.rng
        owner = self.owner
        reply = bool(thread.refs)
        outbound = rng.random() < (0.6 if reply and thread.last_from[1] != owner.email else outbound_chance)
        if outbound:
            sender, to, cc = owner, [thread.people[0]], thread.people[1:]
        else:
            sender = thread.people[0] if not reply or rng.random() < 0.7 else rng.choice(thread.people)
            to, cc = [owner], [p for p in thread.people if p is not sender]
        if kind == "crm" and rng.random() < 0.08:
            cc = [*cc, rng.choice(self.crm.reps[1:])]
        subject = thread.subject if not reply else f"{rng.choice(('Re', 'RE', 'AW'))}: {thread.subject}"
        headers = self._envelope(sender, to, cc, subject, when, thread.account, outlook=thread.outlook)
        if reply:
            headers += [("In-Reply-To", thread.refs[-1]), ("References", mime.fold(" ".join(thread.refs[-10:])))]
        if thread.outlook:
            index = thread.index_root + rng.randbytes(5 * min(len(thread.refs), 20))
            headers += [
                ("Thread-Topic", mime.encoded_word(thread.subject, rng)),
                ("Thread-Index", base64.b64encode(index).decode("ascii")),
            ]
        attachments = self._attachments(kind)
        target = max(self._size(), sum(len(p.body) for p in attachments) + 4 * 1024)
        target = min(int(MAX_SIZE * 0.94), max(int(MIN_SIZE * 1.07), target))  # the fit below is ±6 %
        fixed = sum(len(k) + len(v) + 3 for k, v in headers) + sum(len(p.body) + 250 for p in attachments)
        html = rng.random() < 0.65
        quote = thread.quote if thread.quote and rng.random() < 0.85 else []
        state = rng.getstate()
        chars = max(300, (target - fixed) // (3 if html else 1))
        for _ in range(4):  # render, then scale the prose to land on the target size
            rng.setstate(state)
            root, paragraphs = self._body(thread, sender, to[0], chars, html, quote, attachments, when)
            size = fixed + len(root.render())
            if abs(size - target) < 0.06 * target:
                break
            chars = max(150, int(chars * (target - fixed) / max(1, size - fixed)))
        mail = self._finish(kind, headers, root, when, inbound=not outbound, attachments=len(attachments))
        thread.refs.append(dict(headers)["Message-ID"])
        thread.quote, thread.last_from = paragraphs, (sender.name, sender.email)
        return mail

    def _attachments(self, kind: str) -> list[Part]:
        rng = self.rng
        chance = {"crm": 0.28, "colleague": 0.25, "lead": 0.2, "internal": 0.2, "private": 0.15}.get(kind, 0.0)
        if rng.random() >= chance:
            return []
        parts = []
        for _ in range(rng.choices((1, 2, 3), weights=(75, 20, 5))[0]):
            pattern, media, magic = rng.choice(vocab.ATTACHMENTS)
            size = rng.choice((rng.randint(500, 2_000), rng.randint(3_000, 7_000), rng.randint(8_000, 11_000)))
            if media == "text/csv":
                data = (
                    "id;name;qty\n" + "".join(f"{i};item {i};{rng.randint(1, 99)}\n" for i in range(size // 16))
                ).encode()
            else:
                data = magic + rng.randbytes(max(0, size - len(magic)))
            name = pattern.format(p=ascii_slug(rng.choice(vocab.PRODUCTS), "_"), n=rng.randint(100, 9999))
            parts.append(mime.attachment_part(name, media, data, rng))
        while sum(len(p.body) for p in parts) > MAX_SIZE - 8 * 1024 and len(parts) > 1:
            parts.pop()
        return parts

    def _body(
        self,
        thread: Thread,
        sender: Person,
        recipient: Person,
        chars: int,
        html: bool,
        quote: list[str],
        attachments: list[Part],
        when: datetime,
    ) -> tuple[Part, list[str]]:
        """Text (and HTML) of about ``chars`` characters of prose: greeting, paragraphs, signature, quote."""
        rng = self.rng
        paragraphs = vocab.prose(rng, int(chars * 0.7), foreign=0.15)
        greeting = rng.choice(("Hi {f},", "Hello {f},", "Dear {f} {l},", "Guten Tag {l},")).format(
            f=recipient.first, l=recipient.last
        )
        account = thread.account
        closing = [rng.choice(("Best regards,", "Kind regards,", "Thanks,", "Viele Grüße,")), sender.name]
        if sender in self.crm.reps:
            closing += ["Account Executive", "Northwind Sales", "+1 (212) 555-0100"]
        elif account is not None and sender.title:
            closing += [sender.title, account.name, sender.phone]
        if rng.random() < 0.15:
            paragraphs.append(rng.choice(vocab.CJK))
        quoted: list[str] = []
        left = int(chars * 0.3)
        for p in quote:
            if left <= 0:
                break
            quoted.append(p[:left])
            left -= len(p)
        lines = [greeting, ""]
        for p in paragraphs:
            lines += [*vocab.wrap(p), ""]
        lines += closing
        if quoted:
            name, email = thread.last_from
            lines += ["", f"On {mime.rfc2822(when - timedelta(hours=3), 0)}, {name} <{email}> wrote:"]
            for p in quoted:
                lines += [f"> {line}" for line in vocab.wrap(p, 70)] + [">"]
        body: Part = mime.text_part(NL.join(lines) + NL, rng)
        if html:
            style = "outlook" if thread.outlook else "gmail"
            html_text = mime.html_document([greeting, *paragraphs, *closing, *quoted], style=style)
            html_part = mime.text_part(html_text, rng, "html")
            if rng.random() < 0.1:  # an inline signature logo
                logo = mime.attachment_part(
                    "image001.png",
                    "image/png",
                    b"\x89PNG\r\n\x1a\n" + rng.randbytes(900),
                    rng,
                    inline_id=f"image001.png@01DA{mime.hex_id(rng, 4)}",
                )
                html_part = mime.multipart("related", self._boundary(), [html_part, logo], '; type="text/html"')
            body = mime.multipart("alternative", self._boundary(), [body, html_part])
        if attachments:
            body = mime.multipart("mixed", self._boundary(), [body, *attachments])
        return body, paragraphs

    def _envelope(
        self,
        sender: Person,
        to: list[Person],
        cc: list[Person],
        subject: str,
        when: datetime,
        account: Account | None,
        *,
        outlook: bool = False,
        display: str | None = None,
    ) -> list[tuple[str, str]]:
        rng = self.rng
        domain = sender.email.rpartition("@")[2]
        offset = (
            account.utc_offset if account is not None and sender.email not in {r.email for r in self.crm.reps} else -300
        )
        inbound = sender.email != self.owner.email
        headers: list[tuple[str, str]] = []
        if inbound:
            headers.append(("Return-Path", f"<{sender.email}>"))
            headers += mime.received_chain(rng, domain, self.owner.email, when, rng.randint(2, 4))
            if not domain.endswith(self.owner.email.rpartition("@")[2]):
                headers += mime.signature_headers(rng, domain, when)
        headers += [
            ("From", mime.address(display or sender.name, sender.email, rng)),
            ("To", mime.address_list([(p.name, p.email) for p in to], rng)),
        ]
        if cc:
            headers.append(("Cc", mime.address_list([(p.name, p.email) for p in cc], rng)))
        headers += [
            ("Subject", mime.encoded_word(subject, rng)),
            ("Date", mime.rfc2822(when, offset)),
            ("Message-ID", self._message_id(domain, outlook)),
        ]
        if outlook:
            headers += [
                ("Accept-Language", "en-US"),
                ("Content-Language", "en-US"),
                ("X-MS-Has-Attach", ""),
                ("X-MS-TNEF-Correlator", ""),
                ("X-MS-Exchange-Organization-AuthAs", "Anonymous" if inbound else "Internal"),
                ("X-Originating-IP", f"[10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}]"),
            ]
        else:
            headers.append(("User-Agent", rng.choice(("Mozilla Thunderbird", "Gmail", "Apple Mail (2.3731)"))))
        return headers

    def _finish(
        self,
        kind: str,
        headers: list[tuple[str, str]],
        root: Part,
        when: datetime,
        *,
        inbound: bool,
        attachments: int = 0,
    ) -> Mail:
        data = Message(headers).render(root)
        unread = inbound and self.rng.random() < 0.08
        return Mail(kind, "" if inbound else SENT, unread, when, data, attachments)


def _ics(
    method: str,
    uid: str,
    topic: str,
    organizer: Person,
    attendees: list[Person],
    start: datetime,
    sequence: int,
    stamp: datetime,
) -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    lines = [
        "BEGIN:VCALENDAR", f"METHOD:{method}", "PRODID:Microsoft Exchange Server 2010", "VERSION:2.0",
        "BEGIN:VEVENT", f'ORGANIZER;CN="{organizer.name}":mailto:{organizer.email}',
        *(f'ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE;CN="{a.name}":mailto:{a.email}'
          for a in attendees),
        f"DESCRIPTION;LANGUAGE=en-US:{topic}\\n\\nAgenda to follow.", f"UID:{uid}", f"SUMMARY;LANGUAGE=en-US:{topic}",
        f"DTSTART:{start:{fmt}}", f"DTEND:{start + timedelta(minutes=60):{fmt}}", "CLASS:PUBLIC", "PRIORITY:5",
        f"DTSTAMP:{stamp:{fmt}}", "TRANSP:OPAQUE", f"STATUS:{'CANCELLED' if method == 'CANCEL' else 'CONFIRMED'}",
        f"SEQUENCE:{sequence}", "LOCATION;LANGUAGE=en-US:Microsoft Teams Meeting",
        "BEGIN:VALARM", "DESCRIPTION:REMINDER", "TRIGGER;RELATED=START:-PT15M", "ACTION:DISPLAY", "END:VALARM",
        "END:VEVENT", "END:VCALENDAR",
    ]  # fmt: skip
    folded = []
    for line in lines:
        while len(line.encode()) > 75:
            folded.append(line[:70])
            line = " " + line[70:]
        folded.append(line)
    return "\r\n".join(folded) + "\r\n"
