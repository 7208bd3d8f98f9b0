"""Masking a mailbox's secret in any text that is shown, logged or stored (SPEC §6).

Error texts come from servers and libraries we do not control: an IMAP server may echo the ``LOGIN`` arguments
in its ``NO`` answer, imaplib quotes that answer as a bytes ``repr``, an HTTP library may quote the form it
posted. Whoever keeps or shows such a text and knows the secret passes it through ``redact_secret``: the
connectors where they translate errors, and the sync runner — for every connector — before an error reaches
``mailboxes.last_error``, the command's output or a log line.

Besides the secret as it is, its common encodings are masked: URL-quoted, base64 (how SASL sends it), escaped
as in a Python ``repr`` or a JSON string, IMAP-quoted. A JSON secret (an IMAP OAuth2 refresh grant, an MSAL
token cache) is also masked credential by credential, since an error quotes one value, not the whole document.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from urllib.parse import quote, quote_plus

MASK = "***"

# The keys of a JSON secret whose values are credentials: a refresh grant's ``refresh_token`` and
# ``client_secret``, an MSAL cache's ``secret`` (of each access, refresh and id token). The other values —
# ``token_url``, ``client_id``, ``scope``, account names — are not secret and make errors readable.
_CREDENTIAL_KEYS = frozenset({"refresh_token", "access_token", "id_token", "client_secret", "secret", "password"})


class RedactedError(Exception):
    """Raised instead of an unexpected error whose text carried a secret: its type name and text, masked."""


def redact_secret(text: str, *secrets: str | None) -> str:
    """``text`` with every secret of ``secrets`` (``None`` and empty ones are skipped) replaced by ``***``."""
    forms = {form for secret in secrets if secret for value in _values(secret) for form in _forms(value)}
    forms.discard("")  # an empty credential in a JSON secret would match between every two characters
    # Longest first: a form that contains another one is masked whole, not around the shorter one.
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


def redacted_error(error: BaseException, *secrets: str | None) -> RedactedError | None:
    """A ``RedactedError`` to raise (``from None``) in place of ``error`` if its text carries a secret."""
    shown = str(error)
    masked = redact_secret(shown, *secrets)
    return None if masked == shown else RedactedError(f"{type(error).__name__}: {masked}")


def _values(secret: str) -> Iterator[str]:
    """The secret, and the credentials inside it when it is a JSON document."""
    yield secret
    if secret.lstrip().startswith(("{", "[")):
        with contextlib.suppress(ValueError):  # not JSON after all: the whole secret is masked, that is all
            yield from _credentials(json.loads(secret))


def _credentials(data: object) -> Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str) and str(key).lower() in _CREDENTIAL_KEYS:
                yield value
            else:
                yield from _credentials(value)
    elif isinstance(data, list):
        for item in data:
            yield from _credentials(item)


def _forms(value: str) -> Iterator[str]:
    """``value`` as it may appear in a message. Never the empty string (it would match everywhere)."""
    imap_quoted = value.replace("\\", "\\\\").replace('"', '\\"')  # imaplib's quoting of LOGIN arguments
    for plain in (value, imap_quoted):
        yield plain
        yield from _escaped(plain)
    yield quote(value, safe="")
    yield quote_plus(value)
    yield json.dumps(value)[1:-1]  # a JSON string's body (\" \\ \uXXXX)
    raw = value.encode("utf-8")
    # Without the padding: a prefix of the padded form, so it masks both (a lone "=" may stay behind).
    yield base64.b64encode(raw).decode("ascii").rstrip("=")
    yield base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _escaped(value: str) -> Iterator[str]:
    """The body of ``repr(value)`` and of ``repr(value.encode())``, with ``'`` escaped and without: which of the
    two a ``repr`` uses depends on the quotes in the whole text, not only in the secret."""
    for shown in (repr(value)[1:-1], repr(value.encode("utf-8"))[2:-1]):
        yield shown
        yield shown.replace("'", "\\'") if "\\'" not in shown else shown.replace("\\'", "'")
