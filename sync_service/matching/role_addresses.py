"""No-reply and system addresses: never auto-created as a contact or lead (``CRM_AUTO_CREATE``).

``Acme Billing <noreply@acme.com>`` or ``postmaster@acme.com`` is no person: its mail is still logged and linked
to the account of its domain, but the sync makes no contact or lead for it — neither from mail
(``matching.decide``) nor from an address book (``matching.cards``). Pure.

The local part (before the last ``@``), lower-cased and without a ``+tag``, is split into words at ``.``,
``_`` and ``-``; the address is a role address when some run of consecutive words, run together, is one of
``ROLE_LOCAL_PARTS``: ``no-reply``, ``No_Reply``, ``noreply+abc``, ``no-reply-billing``, ``billing-noreply``,
``invoice.no-reply``, ``calendar-notification``, ``bounces-123``, ``MAILER-DAEMON`` and ``notifications.github``
are; ``bouncer``, ``noreplyinvoices`` or ``jane.doe`` are not. Shared mailboxes people write to and answer
from (``support@``, ``sales@``, ``info@``) are deliberately not on the list.
"""

from __future__ import annotations

import re

ROLE_LOCAL_PARTS = frozenset(
    {
        "noreply",
        "donotreply",
        "dontreply",
        "mailerdaemon",
        "postmaster",
        "bounce",
        "bounces",
        "notification",
        "notifications",
    }
)
_WORDS = re.compile(r"[._\-]+")
_LONGEST = max(map(len, ROLE_LOCAL_PARTS))


def is_role_address(email: str) -> bool:
    """True for a no-reply / system address (see the module docstring), matched case-insensitively."""
    local = email.rpartition("@")[0] if "@" in email else email
    local = local.strip().strip("<>\"'").lower().split("+", 1)[0]
    words = [w for w in _WORDS.split(local) if w]
    for first in range(len(words)):
        joined = ""
        for word in words[first:]:
            joined += word
            if joined in ROLE_LOCAL_PARTS:
                return True
            if len(joined) >= _LONGEST:
                break
    return False
