"""Words for the generated corpus: names, companies, subjects and business prose (some of it non-ASCII).

Everything is drawn from a caller's seeded ``random.Random``, so the same seed gives the same text.
"""

from __future__ import annotations

import random

FIRST_NAMES = (
    "Anna", "Ben", "Carla", "David", "Elena", "Frank", "Grace", "Hugo", "Irene", "Jonas", "Karin", "Lukas",
    "Maria", "Nils", "Olivia", "Pavel", "Quentin", "Rosa", "Stefan", "Tanja", "Uwe", "Vera", "Walter", "Xenia",
    "Yusuf", "Zoe", "Amelia", "Bruno", "Chloé", "Dorota", "Émile", "Fatima", "Günther", "Hannah", "Ingrid",
    "José", "Kenji", "Łukasz", "Mónica", "Noah", "Øystein", "Priya", "Raj", "Søren", "Thomas", "Ulrike",
    "Victor", "Wei", "Yuki", "Zeynep", "Liam", "Sofia", "Mateo", "Aisha", "Henrik", "Camille", "Diego",
    "Freya", "Igor", "Jana",
)  # fmt: skip
LAST_NAMES = (
    "Adams", "Becker", "Costa", "Dubois", "Evans", "Fischer", "García", "Hoffmann", "Ivanova", "Jensen",
    "Kowalski", "Lehmann", "Müller", "Nakamura", "O'Brien", "Petrov", "Quinn", "Rossi", "Schneider", "Tanaka",
    "Urban", "Virtanen", "Wagner", "Xu", "Yilmaz", "Zimmermann", "Andersson", "Brown", "Chen", "Dvořák",
    "Eriksen", "Ferreira", "Gómez", "Horváth", "Ito", "Jovanović", "Kim", "López", "Martin", "Novak", "Olsen",
    "Patel", "Richter", "Sato", "Thompson", "Ünal", "van Dijk", "Walsh", "Young", "Zhang", "Weiß", "Nowak",
    "Larsen", "Moreau", "Singh", "Khan", "Bauer", "Meyer", "Kaya", "Lindqvist",
)  # fmt: skip
JOB_TITLES = (
    "Head of Procurement", "IT Director", "Chief Technology Officer", "Operations Manager", "Buyer",
    "Project Manager", "CFO", "Logistics Manager", "Purchasing Agent", "VP Engineering", "Account Manager",
    "Solution Architect", "Office Manager", "Managing Director", "Controller",
)  # fmt: skip
COMPANY_HEADS = (
    "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Wonka", "Cyberdyne",
    "Soylent", "Tyrell", "Massive", "Oscorp", "Gringotts", "Nakatomi", "Monarch", "Virtucon", "Zorg", "Aperture",
    "Blue Sun", "Dunder", "Ollivander", "Prestige", "Sirius", "Tricell", "Veridian", "Weyland", "Yoyodyne",
    "Kruger", "Nordwind", "Alpen", "Baltic", "Cascade", "Delta", "Evergreen", "Fjord", "Granite", "Harbor",
    "Iron", "Juniper", "Keystone", "Lumen", "Meridian", "Northstar", "Orchid", "Pinnacle", "Quartz", "Redwood",
)  # fmt: skip
COMPANY_TAILS = (
    "Logistics", "Industries", "Systems", "Foods", "Energy", "Pharma", "Analytics", "Retail", "Motors",
    "Textiles", "Robotics", "Labs", "Holdings", "Freight", "Medical", "Software", "Chemicals", "Aerospace",
    "Insurance", "Media",
)  # fmt: skip
LEGAL_FORMS = ("Inc.", "GmbH", "Ltd", "S.A.", "AG", "LLC", "Corp.", "B.V.", "", "", "")
PRODUCTS = (
    "fleet telematics", "ERP integration", "support renewal", "data migration", "asset tracking",
    "warehouse automation", "analytics platform", "licence expansion", "cloud backup", "field service app",
    "IoT sensors", "security audit", "training package", "managed services",
)  # fmt: skip
SUBJECTS = (
    "Question about {p}", "{p}: next steps", "Proposal for {p}", "Meeting notes – {p}", "Pricing for {p}",
    "Follow-up: {p}", "{p} – updated timeline", "Draft contract for {p}", "Technical questions on {p}",
    "Demo of the {p}", "Budget approval for {p}", "{p} pilot results", "Invoice and delivery for {p}",
    "Requirements for {p}", "Kick-off for the {p} project",
)  # fmt: skip
INTERNAL_SUBJECTS = (
    "Pipeline review on Friday", "Forecast for Q{q}", "Can you cover my call?", "Travel plans next week",
    "Deal desk approval needed", "Lunch?", "Territory split {q}", "Win/loss notes", "Team offsite agenda",
)  # fmt: skip
PRIVATE_SUBJECTS = (
    "Dinner on Saturday?", "Photos from the trip", "Happy birthday!", "Flat viewing", "Kids' football schedule",
    "Re: weekend plans", "Your order has shipped", "Book club",
)  # fmt: skip
NEWSLETTERS = (
    ("SaaS Weekly", "saas-weekly.example"), ("Logistics Today", "logistics-today.example"),
    ("The Sales Digest", "salesdigest.example"), ("CloudNews", "cloudnews.example"),
    ("Industry Insider", "industry-insider.example"), ("Webinar Hub", "webinarhub.example"),
)  # fmt: skip
NOTIFIERS = (
    ("Expense Tool", "no-reply@expenses.example"), ("Ticket Desk", "support@helpdesk.example"),
    ("Calendar Service", "calendar-notification@cal.example"), ("Shipping", "tracking@parcels.example"),
    ("Build Server", "ci@builds.example"),
)  # fmt: skip
PUBLIC_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "gmx.de", "hotmail.com", "icloud.com", "web.de")
ATTACHMENTS = (  # (file name pattern, media type, magic bytes)
    ("Proposal_{p}.pdf", "application/pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"),
    ("Quote_{n}.pdf", "application/pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"),
    ("Requirements_{p}.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
     b"PK\x03\x04\x14\x00\x06\x00"),
    ("Pricing_{n}.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
     b"PK\x03\x04\x14\x00\x06\x00"),
    ("Slides_{p}.pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation",
     b"PK\x03\x04\x14\x00\x06\x00"),
    ("photo_{n}.jpg", "image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
    ("screenshot_{n}.png", "image/png", b"\x89PNG\r\n\x1a\n"),
    ("Übersicht_{n}.pdf", "application/pdf", b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n"),
    ("export_{n}.csv", "text/csv", b""),
    ("contract_{n}.zip", "application/zip", b"PK\x03\x04\x14\x00\x00\x00"),
)  # fmt: skip

_OPENERS = (
    "Thank you for your time today.", "As discussed on the phone,", "Following up on our last meeting,",
    "I hope this finds you well.", "Quick update from our side:", "Please find my comments below.",
    "Sorry for the late reply.", "Good news:", "Just to confirm,", "Apologies for the delay,",
)  # fmt: skip
_SUBJECTS = (
    "our team", "the steering committee", "procurement", "legal", "the project board", "our CFO", "IT security",
    "the warehouse managers", "the pilot users", "the regional office",
)  # fmt: skip
_VERBS = (
    "has reviewed", "needs more detail on", "agreed to", "is still discussing", "approved", "asked about",
    "wants to revisit", "is happy with", "raised concerns about", "will sign off on",
)  # fmt: skip
_OBJECTS = (
    "the pricing in section 4", "the delivery timeline", "the service level terms", "the pilot scope",
    "the integration with our ERP", "the licence model", "the rollout plan for Q3", "the revised quote",
    "the data protection addendum", "the training schedule", "the hardware specification",
    "the payment terms", "the support hours", "the acceptance criteria",
)  # fmt: skip
_CLOSERS = (
    "Let me know if you have any questions.", "Could we schedule a call next week?",
    "I will send the updated documents by Friday.", "Looking forward to your feedback.",
    "Please confirm by end of week.", "Happy to discuss in more detail.", "Thanks again for your support.",
)  # fmt: skip
FOREIGN = (  # non-ASCII prose: UTF-8 and Latin-1 bodies, quoted-printable
    "Vielen Dank für die schnelle Rückmeldung, wir prüfen das Angebot bis Donnerstag.",
    "Nous avons bien reçu le devis ; la réunion est prévue à 14 h.",
    "Gracias por la reunión, enviaremos los comentarios mañana.",
    "Grüße aus München – die Lieferung ist für nächste Woche geplant.",
    "Les pièces jointes contiennent les spécifications détaillées.",
)  # fmt: skip
CJK = ("次のステップについてご確認ください。", "見積書を添付しました。よろしくお願いします。")


def sentence(rng: random.Random) -> str:
    return f"{rng.choice(_OPENERS)} {rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}."


def prose(rng: random.Random, chars: int, *, foreign: float = 0.0) -> list[str]:
    """Paragraphs of about ``chars`` characters in total (at least one sentence)."""
    paragraphs: list[str] = []
    total = 0
    while total < chars or not paragraphs:
        parts = [sentence(rng) for _ in range(rng.randint(2, 5))]
        if rng.random() < 0.5:
            parts.append(rng.choice(_CLOSERS))
        if foreign and rng.random() < foreign:
            parts.append(rng.choice(FOREIGN))
        text = " ".join(parts)
        paragraphs.append(text)
        total += len(text) + 2
    return paragraphs


def wrap(text: str, width: int = 72) -> list[str]:
    """Greedy word wrap (mail clients wrap plain text at about 72 columns)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines
