"""What matching sees of an email: its headers as ``ItemFacts`` (pure; used by processing and parsing ahead)."""

from __future__ import annotations

from sync_service.matching.model import ItemFacts
from sync_service.values import MessageHeaders


def facts_of(headers: MessageHeaders, owner_email: str) -> ItemFacts:
    sender = headers.sender_address
    seen = {sender.email} if sender else set()
    participants = []
    for address in headers.recipients:
        if address.email not in seen:
            seen.add(address.email)
            participants.append(address)
    reply_to = tuple(a for a in headers.reply_to if sender is None or a.email != sender.email)
    return ItemFacts(
        kind="email",
        sender=sender,
        participants=tuple(participants),
        reply_to=reply_to,
        subject=headers.subject,
        message_id=headers.message_id,
        in_reply_to=headers.in_reply_to,
        references=headers.references,
        conversation_id=headers.conversation_id,
        automated_reason=headers.automated_reason,
        mailbox_owner=owner_email,
    )
