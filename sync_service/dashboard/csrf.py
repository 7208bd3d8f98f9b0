"""CSRF protection: a per-session random token in every form, checked on every POST.

The token lives in the signed session cookie (so it cannot be forged without the server's key) and is put
into each form as the hidden field ``csrf_token``. A POST whose field is missing or differs from the
session's token — or that comes without a session — is refused with 403 before anything else happens.
Logging in issues a new token. ``SameSite=Strict`` cookies are a second line of defence.

Forms are read here (``application/x-www-form-urlencoded``, at most 64 KB), so no multipart parser is needed.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl

from fastapi import HTTPException, Request

from sync_service.dashboard.web import CsrfRejected, current_session

FIELD = "csrf_token"
MAX_FORM_BYTES = 64 * 1024
Form = dict[str, str]


async def read_form(request: Request) -> Form:
    """The urlencoded form of the request (first value of each field)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise CsrfRejected()  # a cross-site form can only be urlencoded, multipart or text; we take one kind
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise HTTPException(413, "form too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, "form too large")
    form: Form = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        form.setdefault(key, value)
    return form


def token_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


async def csrf_form(request: Request) -> Form:
    """Dependency of every POST route: the form, once its CSRF token matched the session's."""
    session = current_session(request)
    form = await read_form(request)
    if session is None or not token_matches(session.csrf, form.get(FIELD)):
        raise CsrfRejected()
    return form
