"""The dashboard's routes: login / logout, the page, an activity, the actions, ``/metrics``, ``/healthz``.

Pages need a logged-in session (``require_login``); every POST needs the session's CSRF token (``csrf_form``).
Database work runs in FastAPI's thread pool (plain ``def`` routes), each in its own short session.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import redis
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from sync_service.dashboard import actions
from sync_service.dashboard.auth import Session, bearer_matches, check_credentials
from sync_service.dashboard.content import activity_detail
from sync_service.dashboard.csrf import Form, csrf_form
from sync_service.dashboard.data import build_page
from sync_service.dashboard.metrics import CONTENT_TYPE, render_metrics, worker_metrics
from sync_service.dashboard.web import (
    client_address,
    current_session,
    require_login,
    state_of,
    store_session,
)
from sync_service.errors import ConfigError
from sync_service.status import collect_status

router = APIRouter()
LoggedIn = Annotated[Session, Depends(require_login)]
CheckedForm = Annotated[Form, Depends(csrf_form)]


def render(
    request: Request, template: str, session: Session | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """A page from ``templates/``; every page gets the session's CSRF token for its forms."""
    env = state_of(request).templates
    html = env.get_template(template).render(csrf_token=session.csrf if session else "", session=session, **context)
    return HTMLResponse(html, status_code=status_code)


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no ``//host`` or ``\\`` tricks) may follow a login."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _back(request: Request, session: Session, message: str, ok: bool = True, anchor: str = "") -> Response:
    """Redirect to the page (303, so a reload does not repeat the POST) with a one-line message."""
    response = RedirectResponse(f"/{anchor}", status_code=303)
    store_session(request, response, session.with_flash(("ok:" if ok else "error:") + message))
    return response


# ----------------------------------------------------------------------------------------------- login


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    state, session = state_of(request), current_session(request)
    if session is not None and session.authenticated:
        return RedirectResponse(_safe_next(next), status_code=303)
    if session is None:
        session = Session.new(state.config.session_seconds, state.codec.clock())
    response = render(request, "login.html", session, next=_safe_next(next), error=None)
    store_session(request, response, session)
    return response


@router.post("/login", response_class=HTMLResponse)
def login(request: Request, form: CheckedForm) -> Response:
    state, client = state_of(request), client_address(request)
    session = current_session(request)
    assert session is not None  # csrf_form refused the request otherwise
    target = _safe_next(form.get("next"))
    if state.throttle.blocked(client):
        error = "Too many failed attempts: wait a few minutes."
        return render(request, "login.html", session, 429, next=target, error=error)
    if not check_credentials(state.config.password_hash, state.config.token, form.get("password", "")):
        state.throttle.failed(client)
        return render(request, "login.html", session, 401, next=target, error="Wrong password or token.")
    state.throttle.succeeded(client)
    state.codec.revoke(session)  # the anonymous session ends; a new id and CSRF token (no fixation)
    fresh = Session.new(state.config.session_seconds, state.codec.clock(), authenticated=True)
    response = RedirectResponse(target, status_code=303)
    store_session(request, response, fresh)
    return response


@router.post("/logout")
def logout(request: Request, session: LoggedIn, form: CheckedForm) -> Response:
    state_of(request).codec.revoke(session)
    response = RedirectResponse("/login", status_code=303)
    store_session(request, response, None)
    return response


# ----------------------------------------------------------------------------------------------- pages


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, session: LoggedIn) -> Response:
    state = state_of(request)
    queues = state.queues()
    with state.app.sessions() as db:
        page = build_page(db, queues, state.config.alerts)
    flash = session.flash
    response = render(request, "dashboard.html", session, page=page, flash=flash)
    if flash:
        store_session(request, response, session.with_flash(None))
    return response


@router.get("/activities/{activity_id}", response_class=HTMLResponse)
def activity(request: Request, activity_id: int, session: LoggedIn) -> Response:
    state = state_of(request)
    with state.app.sessions() as db:
        try:
            detail = activity_detail(db, state.app.blobs, activity_id)
        except ConfigError as error:
            return render(request, "error.html", session, 404, title="Not found", message=str(error))
    return render(request, "activity.html", session, activity=detail)


# ----------------------------------------------------------------------------------------------- actions


def _run(request: Request, session: LoggedIn, anchor: str, action: Any, *args: Any) -> Response:
    """Run one action; a refusal (unknown name, wrong mode) or an unreachable Redis becomes the message."""
    try:
        message = action(state_of(request).app, *args)
    except ConfigError as error:
        return _back(request, session, str(error), ok=False, anchor=anchor)
    except redis.RedisError as error:
        return _back(request, session, f"Redis cannot be reached: {type(error).__name__}", ok=False, anchor=anchor)
    return _back(request, session, message, anchor=anchor)


@router.post("/mailboxes/{name}/requeue-dead")  # before the generic route below, which would take it
def requeue_mailbox_dead(request: Request, name: str, session: LoggedIn, form: CheckedForm) -> Response:
    return _run(request, session, f"#mailbox-{quote(name)}", actions.requeue_dead_letters, None, name)


@router.post("/mailboxes/{name}/{action}")
def mailbox_action(request: Request, name: str, action: str, session: LoggedIn, form: CheckedForm) -> Response:
    return _run(request, session, f"#mailbox-{quote(name)}", actions.mailbox_action, name, action)


@router.post("/queues/requeue-dead")
def requeue_dead(request: Request, session: LoggedIn, form: CheckedForm) -> Response:
    queue = form.get("queue") or None
    return _run(request, session, "#queues", actions.requeue_dead_letters, queue)


@router.post("/quarantine/retry-all")
def retry_all_quarantined(request: Request, session: LoggedIn, form: CheckedForm) -> Response:
    return _run(request, session, "#quarantine", actions.retry_all_quarantined)


@router.post("/quarantine/{entry_id}/retry")
def retry_quarantined(request: Request, entry_id: int, session: LoggedIn, form: CheckedForm) -> Response:
    return _run(request, session, "#quarantine", actions.retry_quarantined, entry_id)


@router.post("/review/{activity_id}/assign")
def assign_review(request: Request, activity_id: int, session: LoggedIn, form: CheckedForm) -> Response:
    raw = form.get("opportunity_id", "")
    if not raw.isdigit():
        return _back(request, session, "choose an opportunity", ok=False, anchor="#review")
    return _run(request, session, "#review", actions.assign_review, activity_id, int(raw))


# ----------------------------------------------------------------------------------------------- machines


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """Prometheus metrics: for a Bearer token (``CRM_METRICS_TOKEN`` or ``CRM_ADMIN_TOKEN``) or a logged-in
    session."""
    state = state_of(request)
    session = current_session(request)
    allowed = bearer_matches(request.headers.get("authorization"), state.config.metrics_token, state.config.token)
    if not allowed and not (session is not None and session.authenticated):
        return PlainTextResponse("authentication required\n", 401, headers={"WWW-Authenticate": "Bearer"})
    queues = state.queues()
    with state.app.sessions() as db:
        status = collect_status(db, queues=queues.status, alert_config=state.config.alerts, liveness=queues.liveness)
    text = render_metrics(status) + worker_metrics(state.app.settings.worker_metrics_dir)
    return Response(text, media_type=CONTENT_TYPE)


@router.api_route("/healthz", methods=["GET", "HEAD"])
def healthz() -> PlainTextResponse:
    """Liveness for a reverse proxy or an orchestrator; tells nothing else."""
    return PlainTextResponse("ok\n")
