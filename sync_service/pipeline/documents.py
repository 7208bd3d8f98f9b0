"""Documents of a logged email: the message itself as ``.eml`` and each attachment.

Bytes go to the content-addressed blob store (stored once per sha256); a ``Document`` row links a file
name to the activity, its primary account and its opportunity; one per (activity, sha, name).
"""

from __future__ import annotations

from dataclasses import dataclass

from crm_store.models import Activity, Document
from sync_service.parsing.filenames import safe_filename
from sync_service.pipeline.context import ProcessContext
from sync_service.values import MessageBody


@dataclass(frozen=True, slots=True)
class FileRef:
    sha256: str
    filename: str
    media_type: str
    size: int
    kind: str  # email | attachment


def email_files(ctx: ProcessContext, subject: str, raw_sha: str, raw_size: int, body: MessageBody) -> list[FileRef]:
    """The documents of a logged email — itself as ``.eml`` and its attachments (their bytes go to the blob
    store here) — one per (sha, name)."""
    # The subject is text, not a path: a "/" in it must not cut the name down to its last part.
    safe_subject = (subject or "message").replace("/", "_").replace("\\", "_")
    files = {
        (raw_sha, name := safe_filename(f"{safe_subject}.eml", default="message.eml")): FileRef(
            raw_sha, name, "message/rfc822", raw_size, "email"
        )
    }
    for attachment in body.attachments:
        if attachment.inline and attachment.media_type.startswith("image/"):
            continue  # signature logos and inline pictures are part of the .eml, not separate documents
        pack = ctx.batch.pack if ctx.batch is not None else None
        sha = pack.add(attachment.data) if pack is not None else ctx.blobs.put(attachment.data)
        key = (sha, attachment.filename)
        if key not in files:  # the same file twice in one email is one document
            files[key] = FileRef(sha, attachment.filename, attachment.media_type, len(attachment.data), "attachment")
    return list(files.values())


def store_email_documents(
    ctx: ProcessContext, activity: Activity, raw_sha: str, raw_size: int, body: MessageBody
) -> None:
    """The documents of a NEW email activity (it has none yet: nothing is looked up, nothing is flushed)."""
    for file in email_files(ctx, activity.subject, raw_sha, raw_size, body):
        activity.documents.append(document_of(file, activity))  # saved with the activity


def document_of(file: FileRef, activity: Activity) -> Document:
    """A stored file as a document of ``activity``, linked to its account and opportunity."""
    return Document(
        sha256=file.sha256,
        filename=file.filename,
        media_type=file.media_type,
        size=file.size,
        kind=file.kind,
        account_id=activity.account_id,
        opportunity_id=activity.opportunity_id,
    )


def relink_documents(activity: Activity) -> None:
    """Keep the documents' account / opportunity equal to their activity's after re-matching."""
    for document in activity.documents:
        document.account_id = activity.account_id
        document.opportunity_id = activity.opportunity_id
