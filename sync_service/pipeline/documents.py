"""Documents of a logged email: the message itself as ``.eml`` and each attachment.

Bytes go to the content-addressed blob store (stored once per sha256); a ``Document`` row links a file
name to the activity, its primary account and its opportunity. Idempotent per (activity, sha, name).
"""

from __future__ import annotations

from sqlalchemy import select

from crm_store.models import Activity, Document
from sync_service.parsing.filenames import safe_filename
from sync_service.pipeline.context import ProcessContext
from sync_service.values import MessageBody


def _add(ctx: ProcessContext, activity: Activity, sha: str, name: str, media: str, size: int, kind: str) -> None:
    exists = ctx.session.scalar(
        select(Document.id).where(
            Document.activity_id == activity.id, Document.sha256 == sha, Document.filename == name
        )
    )
    if exists is None:
        ctx.session.add(
            Document(
                sha256=sha,
                filename=name,
                media_type=media,
                size=size,
                kind=kind,
                activity_id=activity.id,
                account_id=activity.account_id,
                opportunity_id=activity.opportunity_id,
            )
        )


def store_email_documents(
    ctx: ProcessContext, activity: Activity, raw_sha: str, raw_size: int, body: MessageBody
) -> None:
    # The subject is text, not a path: a "/" in it must not cut the name down to its last part.
    subject = (activity.subject or "message").replace("/", "_").replace("\\", "_")
    eml_name = safe_filename(f"{subject}.eml", default="message.eml")
    _add(ctx, activity, raw_sha, eml_name, "message/rfc822", raw_size, "email")
    for attachment in body.attachments:
        if attachment.inline and attachment.media_type.startswith("image/"):
            continue  # signature logos and inline pictures are part of the .eml, not separate documents
        sha = ctx.blobs.put(attachment.data)
        _add(ctx, activity, sha, attachment.filename, attachment.media_type, len(attachment.data), "attachment")


def relink_documents(activity: Activity) -> None:
    """Keep the documents' account / opportunity equal to their activity's after re-matching."""
    for document in activity.documents:
        document.account_id = activity.account_id
        document.opportunity_id = activity.opportunity_id
