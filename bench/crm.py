"""The generated CRM: reps, accounts with domains, contacts with several addresses, leads, open opportunities.

A pure function of the seed and the sizes (never of the number of messages), so corpora of different sizes
share the same CRM and a memory comparison between them measures the mailbox alone. ``write_csvs`` writes the
SPEC §5 import formats; opportunity ids are assigned in CSV order on a fresh database (1, 2, …), which the
mail generator relies on for ``[OPP-<id>]`` tracking tokens.
"""

from __future__ import annotations

import csv
import random
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from bench import vocab

INTERNAL_DOMAIN = "northwind-sales.example"
OPEN_STAGES = (
    "Interest verification", "Qualification", "Needs analysis", "Presentation", "Id. decision makers",
    "Proposal submission", "Negotiations", "Contracting",
)  # fmt: skip
TERRITORIES = ("North", "South", "East", "West", "EMEA", "Americas", "APAC")
SOURCES = ("Expo", "Web form", "Referral", "Business card", "Cold call", "Partner", "Email")
UTC_OFFSETS = (-480, -300, -360, 0, 60, 60, 120, 330, 540)  # minutes: the senders' time zones


@dataclass(frozen=True, slots=True)
class Person:
    first: str
    last: str
    emails: tuple[str, ...]
    title: str = ""
    phone: str = ""
    mobile: str = ""

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    @property
    def email(self) -> str:
        return self.emails[0]


@dataclass(frozen=True, slots=True)
class Opportunity:
    id: int  # the database id on a fresh database (CSV order)
    title: str
    stage: str
    participants: tuple[str, ...]  # contact emails

    @property
    def open(self) -> bool:
        return not self.stage.startswith("Closed")


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    domains: tuple[str, ...]
    territory: str
    kind: str
    owner: str
    contacts: tuple[Person, ...]
    opportunities: tuple[Opportunity, ...]
    utc_offset: int  # minutes
    outlook: bool  # its people write with Outlook (Thread-Index headers, Word HTML)


@dataclass(frozen=True, slots=True)
class Lead:
    person: Person
    company: str
    status: str
    source: str
    owner: str


@dataclass(frozen=True, slots=True)
class Crm:
    reps: tuple[Person, ...]
    accounts: tuple[Account, ...]
    leads: tuple[Lead, ...]

    @property
    def owner(self) -> Person:
        """The rep whose mailbox the corpus is."""
        return self.reps[0]

    def counts(self) -> dict[str, int]:
        return {
            "reps": len(self.reps),
            "accounts": len(self.accounts),
            "contacts": sum(len(a.contacts) for a in self.accounts),
            "leads": len(self.leads),
            "opportunities": sum(len(a.opportunities) for a in self.accounts),
        }


def ascii_slug(text: str, sep: str = "") -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    words = ["".join(c for c in w if c.isalnum()) for w in plain.replace("-", " ").split()]
    return sep.join(w for w in words if w)


def _phone(rng: random.Random) -> str:
    fmt = rng.choice(("+1 ({a}) 555-{b:04d}", "+49 30 {a}{b:04d}", "+44 20 {a} {b:04d}", "+33 1 {a} {b:04d}"))
    return fmt.format(a=rng.randint(200, 989), b=rng.randint(100, 9999))


class _Names:
    """Unique people and addresses across the whole CRM."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def unique(self, email: str) -> str:
        local, _, domain = email.partition("@")
        candidate, n = email, 1
        while candidate in self.used:
            n += 1
            candidate = f"{local}{n}@{domain}"
        self.used.add(candidate)
        return candidate

    def person(self, domain: str, *, extra_emails: bool = True, title: bool = True) -> Person:
        rng = self.rng
        first, last = rng.choice(vocab.FIRST_NAMES), rng.choice(vocab.LAST_NAMES)
        f, la = ascii_slug(first), ascii_slug(last)
        emails = [self.unique(f"{f}.{la}@{domain}")]
        if extra_emails and rng.random() < 0.25:
            emails.append(self.unique(f"{f[0]}.{la}@{domain}"))
        if extra_emails and rng.random() < 0.08:  # a private address registered on the contact
            emails.append(self.unique(f"{f}{la}{rng.randint(1, 99)}@{rng.choice(vocab.PUBLIC_DOMAINS)}"))
        mobile = _phone(rng) if rng.random() < 0.4 else ""
        return Person(first, last, tuple(emails), rng.choice(vocab.JOB_TITLES) if title else "", _phone(rng), mobile)


def build_crm(seed: int, accounts: int = 400, leads: int = 150) -> Crm:
    rng = random.Random(f"{seed}:crm")
    names = _Names(rng)
    reps = tuple(
        Person(first, "Sales", (names.unique(f"{first.lower()}@{INTERNAL_DOMAIN}"),))
        for first in ("Alice", "Bob", "Carol", "Dan", "Erin", "Frank")
    )
    taken: set[str] = set()
    built: list[Account] = []
    next_opp = 1
    for index in range(accounts):
        head, tail = rng.choice(vocab.COMPANY_HEADS), rng.choice(vocab.COMPANY_TAILS)
        base = f"{head} {tail}"
        slug = ascii_slug(base, "-")
        if slug in taken:
            base, slug = f"{base} {index}", f"{slug}-{index}"
        taken.add(slug)
        name = f"{base} {rng.choice(vocab.LEGAL_FORMS)}".strip()
        domains = [f"{slug}.example"]
        if rng.random() < 0.2:
            domains.append(f"{slug}-group.example")
        contacts = tuple(names.person(rng.choice(domains)) for _ in range(rng.randint(2, 7)))
        opportunities: list[Opportunity] = []
        for _ in range(rng.choices((0, 1, 2), weights=(25, 60, 15))[0]):
            # "Closed lost" needs a lost reason, which the CSV format has no column for: the import refuses it
            stage = rng.choice(OPEN_STAGES) if rng.random() < 0.9 else rng.choice(("Closed won", "Closed rejected"))
            members = rng.sample(contacts, k=min(len(contacts), rng.randint(1, 3)))
            title = f"{head} {rng.choice(vocab.PRODUCTS)}"
            if any(o.title == title for o in opportunities):
                title = f"{title} {next_opp}"
            opportunities.append(Opportunity(next_opp, title, stage, tuple(p.email for p in members)))
            next_opp += 1
        built.append(
            Account(
                name=name,
                domains=tuple(domains),
                territory=rng.choice(TERRITORIES),
                kind=rng.choice(("customer", "prospect")),
                owner=rng.choice(reps).email,
                contacts=contacts,
                opportunities=tuple(opportunities),
                utc_offset=rng.choice(UTC_OFFSETS),
                outlook=rng.random() < 0.45,
            )
        )
    lead_list = []
    for index in range(leads):
        company = f"{rng.choice(vocab.COMPANY_HEADS)} {rng.choice(vocab.COMPANY_TAILS)} {index}"
        domain = f"{ascii_slug(company, '-')}.example" if rng.random() < 0.8 else rng.choice(vocab.PUBLIC_DOMAINS)
        status = rng.choice(("Initial Lead", "Initial Lead", "Prospect", "Bad Lead"))
        person = names.person(domain, extra_emails=False, title=False)
        lead_list.append(Lead(person, company, status, rng.choice(SOURCES), rng.choice(reps).email))
    return Crm(reps, tuple(built), tuple(lead_list))


CONTACT_COLUMNS = (
    "Title", "First Name", "Middle Name", "Last Name", "Suffix", "Company", "Department", "Job Title",
    "Business City", "Business Phone", "Mobile Phone", "E-mail Address", "E-mail Type", "E-mail Display Name",
    "E-mail 2 Address", "E-mail 3 Address", "Categories", "Notes",
)  # fmt: skip


def write_csvs(crm: Crm, directory: Path) -> dict[str, Path]:
    """accounts.csv, contacts.csv (Outlook export, UTF-8 with BOM), leads.csv, opportunities.csv."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {kind: directory / f"{kind}.csv" for kind in ("accounts", "contacts", "leads", "opportunities")}
    with paths["accounts"].open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(("Name", "Type", "Domains", "Territory", "Owner"))
        for a in crm.accounts:
            out.writerow((a.name, a.kind, ";".join(a.domains), a.territory, a.owner))
    with paths["contacts"].open("w", newline="", encoding="utf-8-sig") as fh:
        out = csv.writer(fh, quoting=csv.QUOTE_ALL)
        out.writerow(CONTACT_COLUMNS)
        for i, a in enumerate(crm.accounts):
            company = a.name.upper() if i % 10 == 3 else ("" if i % 20 == 7 else a.name)  # case / domain joins
            for p in a.contacts:
                emails = (*p.emails, "", "")
                out.writerow(
                    ("", p.first, "", p.last, "", company, "", p.title, "", p.phone, p.mobile, emails[0], "SMTP",
                     f"{p.name} ({emails[0]})", emails[1], emails[2], "", "")
                )  # fmt: skip
    with paths["leads"].open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(("Name", "Company", "Email", "Phone", "Status", "Source", "Owner"))
        for lead in crm.leads:
            p = lead.person
            out.writerow((p.name, lead.company, p.email, p.phone, lead.status, lead.source, lead.owner))
    with paths["opportunities"].open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(("Title", "Account", "Stage", "Owner", "Contacts", "Amount", "Close Date", "Source"))
        for a in crm.accounts:
            for o in a.opportunities:
                amount = 5_000 + (o.id * 7_919) % 250_000
                close = f"2026-{1 + o.id % 12:02d}-{1 + o.id % 28:02d}"
                out.writerow((o.title, a.name, o.stage, a.owner, ";".join(o.participants), amount, close, "Referral"))
    return paths
