"""One activity with its email content, made safe to show: HTML only after ``nh3.clean``.

Subjects, addresses and plain text go to the template as text (Jinja escapes them). An email's HTML body is
reduced by nh3 to formatting tags: no scripts, styles, forms, frames or images (remote images are trackers),
links get ``rel="noopener noreferrer nofollow"`` and only http, https and mailto schemes. The page's
Content-Security-Policy blocks scripts and remote loads as a second line of defence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import nh3
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_store.blobs import BlobStore
from crm_store.models import Account, Activity, Contact, ItemSource, Mailbox, Opportunity, RawItem, SyncedItem
from sync_service.errors import ConfigError, ParseError
from sync_service.parsing.mime import parse_body

SAFE_TAGS = frozenset(
    {"a", "abbr", "b", "blockquote", "br", "code", "div", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
     "li", "ol", "p", "pre", "s", "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th",
     "thead", "tr", "u", "ul"}
)  # fmt: skip
SAFE_ATTRIBUTES = {"a": {"href", "title"}, "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan"}}
MAX_HTML = 500_000  # characters of HTML sanitised and shown; the rest is cut


def sanitize_html(html: str) -> Markup:
    """``html`` from an email, cleaned by nh3 and marked safe for the template (the only such place)."""
    cleaned = nh3.clean(
        html[:MAX_HTML],
        tags=set(SAFE_TAGS),
        clean_content_tags={"script", "style", "title"},
        attributes={k: set(v) for k, v in SAFE_ATTRIBUTES.items()},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return Markup(cleaned)  # cleaned by nh3 just above


@dataclass(frozen=True)
class ActivityDetail:
    id: int
    type: str
    subject: str
    status: str
    direction: str | None
    start: object
    end: object
    account: str | None
    opportunity: str | None
    contacts: list[str]
    mailboxes: list[str]
    documents: list[str]
    text: str
    html: Markup | None
    problems: list[str]
    days: str | None = None  # an all-day event: its dates ("2026-03-11 – 2026-03-13"), shown instead of times


def _all_day_dates(activity: Activity) -> str | None:
    """The days an all-day event covers; its end is the midnight after its last day."""
    if not activity.all_day or activity.start_at is None:
        return None
    first = activity.start_at.date()
    last = (activity.end_at - timedelta(days=1)).date() if activity.end_at is not None else first
    return first.isoformat() if last <= first else f"{first.isoformat()} – {last.isoformat()}"


def _body(blobs: BlobStore, item: SyncedItem | None, fallback: str) -> tuple[str, Markup | None, list[str]]:
    if item is None or item.kind != "email" or not item.sha256:
        return fallback, None, []
    try:
        data = blobs.get(item.sha256)
    except OSError:  # the stored bytes are gone (BlobMissing): show what the activity has
        return fallback, None, []
    try:
        body = parse_body(data)
    except ParseError as error:
        return fallback, None, [str(error)]
    html = sanitize_html(body.html) if body.html else None
    return body.text or fallback, html, list(body.problems)


def activity_detail(session: Session, blobs: BlobStore, activity_id: int) -> ActivityDetail:
    activity = session.get(Activity, activity_id)
    if activity is None:
        raise ConfigError(f"no activity {activity_id}")
    account = session.get(Account, activity.account_id) if activity.account_id else None
    opportunity = session.get(Opportunity, activity.opportunity_id) if activity.opportunity_id else None
    item = session.get(SyncedItem, activity.item_id) if activity.item_id else None
    contacts = [c.primary_email or c.name for c in session.scalars(
        select(Contact).where(Contact.id.in_([link.contact_id for link in activity.contact_links]))
    )]  # fmt: skip
    boxes = list(
        session.scalars(
            select(Mailbox.name)
            .join(RawItem, RawItem.mailbox_id == Mailbox.id)
            .join(ItemSource, ItemSource.raw_item_id == RawItem.id)
            .where(ItemSource.item_id == activity.item_id)
            .distinct()
        )
    ) if activity.item_id else []  # fmt: skip
    text, html, problems = _body(blobs, item, activity.body)
    return ActivityDetail(
        id=activity.id,
        type=activity.type,
        subject=activity.subject,
        status=activity.status,
        direction=activity.direction,
        start=activity.start_at,
        end=activity.end_at,
        account=account.name if account else None,
        opportunity=opportunity.title if opportunity else None,
        contacts=contacts,
        mailboxes=sorted(boxes),
        documents=[d.filename for d in activity.documents],
        text=text,
        html=html,
        problems=problems,
        days=_all_day_dates(activity),
    )
