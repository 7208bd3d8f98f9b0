"""Request plumbing shared by the routes: the dashboard's state, the session cookie, the login requirement.

Every page depends on ``require_login``; every POST depends on ``csrf_form`` (``csrf.py``) as well, and
``app.create_app`` refuses to build an app in which one does not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request, Response
from jinja2 import Environment

from sync_service.bootstrap import App
from sync_service.dashboard.auth import LoginThrottle, Session, SessionCodec
from sync_service.dashboard.config import DashboardConfig
from sync_service.dashboard.data import QueueSnapshot


class LoginRequired(Exception):
    """No logged-in session: a page redirects to the login form, an action is refused (403)."""


class CsrfRejected(Exception):
    """An action without the session's CSRF token (missing, wrong, or no session): refused (403)."""


@dataclass
class DashboardState:
    app: App
    config: DashboardConfig
    templates: Environment
    codec: SessionCodec
    read_queues: Any  # Callable[[Settings], QueueSnapshot]
    throttle: LoginThrottle = field(default_factory=LoginThrottle)

    def queues(self) -> QueueSnapshot:
        snapshot: QueueSnapshot = self.read_queues(self.app.settings)
        return snapshot


def state_of(request: Request) -> DashboardState:
    state: DashboardState = request.app.state.dashboard
    return state


def secure_request(request: Request) -> bool:
    """Whether cookies get the ``Secure`` flag: forced by config, else when served over https (behind a proxy,
    uvicorn's ``--proxy-headers`` turns ``X-Forwarded-Proto: https`` into the request's scheme)."""
    mode = state_of(request).config.secure_cookies
    return mode == "true" or (mode == "auto" and request.url.scheme == "https")


def cookie_name(request: Request) -> str:
    # The __Host- prefix makes the browser insist on Secure, Path=/ and no Domain.
    return "__Host-crm_session" if secure_request(request) else "crm_session"


def current_session(request: Request) -> Session | None:
    return state_of(request).codec.decode(request.cookies.get(cookie_name(request)))


def require_login(request: Request) -> Session:
    """The logged-in session, or ``LoginRequired``."""
    session = current_session(request)
    if session is None or not session.authenticated:
        raise LoginRequired()
    return session


def store_session(request: Request, response: Response, session: Session | None) -> None:
    """Write (or, with None, clear) the session cookie: HttpOnly, SameSite=Strict, Secure over https."""
    name = cookie_name(request)
    if session is None:
        response.delete_cookie(name, path="/", secure=secure_request(request), httponly=True, samesite="strict")
        return
    response.set_cookie(
        name,
        state_of(request).codec.encode(session),
        max_age=max(0, session.expires - int(time.time())),
        path="/",
        secure=secure_request(request),
        httponly=True,
        samesite="strict",
    )


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
