"""Documents of a logged email: the message itself as ``.eml`` and each attachment.

Bytes go to the content-addressed blob store (stored once per sha256); a ``Document`` row links a file
name to the activity, its primary account and its opportunity; one per (activity, sha, name).
"""

from __future__ import annotations

from crm_store.models import Activity, Document
from sync_service.parsing.filenames import safe_filename
from sync_service.pipeline.context import ProcessContext
from sync_service.values import MessageBody


def store_email_documents(
    ctx: ProcessContext, activity: Activity, raw_sha: str, raw_size: int, body: MessageBody
) -> None:
    """The documents of a NEW email activity (it has none yet: nothing is looked up, nothing is flushed)."""
    # The subject is text, not a path: a "/" in it must not cut the name down to its last part.
    subject = (activity.subject or "message").replace("/", "_").replace("\\", "_")
    eml_name = safe_filename(f"{subject}.eml", default="message.eml")
    added: set[tuple[str, str]] = set()

    def add(sha: str, name: str, media: str, size: int, kind: str) -> None:
        if (sha, name) in added:  # the same file twice in one email is one document
            return
        added.add((sha, name))
        activity.documents.append(  # saved with the activity
            Document(
                sha256=sha,
                filename=name,
                media_type=media,
                size=size,
                kind=kind,
                account_id=activity.account_id,
                opportunity_id=activity.opportunity_id,
            )
        )

    add(raw_sha, eml_name, "message/rfc822", raw_size, "email")
    for attachment in body.attachments:
        if attachment.inline and attachment.media_type.startswith("image/"):
            continue  # signature logos and inline pictures are part of the .eml, not separate documents
        sha = ctx.blobs.put(attachment.data)
        add(sha, attachment.filename, attachment.media_type, len(attachment.data), "attachment")


def relink_documents(activity: Activity) -> None:
    """Keep the documents' account / opportunity equal to their activity's after re-matching."""
    for document in activity.documents:
        document.account_id = activity.account_id
        document.opportunity_id = activity.opportunity_id
