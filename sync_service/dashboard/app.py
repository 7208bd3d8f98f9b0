"""``create_app(app)``: the dashboard as a FastAPI application (no I/O at import or at creation).

It wires the routes, the templates, the session codec, security headers on every answer, the handlers that
turn a missing login / CSRF token into a redirect or a 403, and — when ``CRM_ALERT_WEBHOOK_URL`` is set — a
background loop that announces alert changes while the server runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.routing import BaseRoute

from sync_service.bootstrap import App
from sync_service.dashboard.auth import SessionCodec
from sync_service.dashboard.config import DashboardConfig, load_dashboard_config
from sync_service.dashboard.csrf import csrf_form
from sync_service.dashboard.data import QueueSnapshot, read_queues
from sync_service.dashboard.views import router
from sync_service.dashboard.web import CsrfRejected, DashboardState, LoginRequired, current_session
from sync_service.dashboard.webhook import notify_from_status
from sync_service.dashboard.wording import duration
from sync_service.errors import ConfigError
from sync_service.status import collect_status

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent

# No scripts at all; styles from our own file; no remote images, frames, or form targets elsewhere.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def _when(value: object) -> str:
    """A time as ``2026-11-02 09:00 UTC`` (datetime or ISO text); ``never`` for none."""
    if value is None or value == "":
        return "never"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["duration"] = duration
    env.filters["path"] = lambda value: quote(str(value), safe="")
    return env


def _uses(dependant: Dependant, call: Callable[..., object]) -> bool:
    return any(d.call is call or _uses(d, call) for d in dependant.dependencies)


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every endpoint, also those of included routers (FastAPI ≥ 0.16x keeps them behind a wrapper)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # FastAPI's included-router wrapper
        if included is not None:
            yield from api_routes(included.routes)


def check_routes(api: FastAPI) -> None:
    """Refuse to serve an app in which a state-changing route would not check the CSRF token."""
    for route in api_routes(api.routes):
        if set(route.methods or ()) - {"GET", "HEAD"} and not _uses(route.dependant, csrf_form):
            raise RuntimeError(f"route {route.path} changes state without the CSRF check")


def _error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    state: DashboardState = request.app.state.dashboard
    session = current_session(request)
    html = state.templates.get_template("error.html").render(
        title=title, message=message, csrf_token=session.csrf if session else "", session=session
    )
    return HTMLResponse(html, status_code=status)


async def _login_required(request: Request, exc: Exception) -> Response:
    if request.method in ("GET", "HEAD"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    return _error_page(request, 403, "Login required", "This action needs a logged-in session. Log in and try again.")


async def _csrf_rejected(request: Request, exc: Exception) -> Response:
    return _error_page(
        request, 403, "Action refused",
        "The form was stale or did not come from this dashboard (missing or wrong CSRF token). "
        "Reload the page and try again.",
    )  # fmt: skip


async def _security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.url.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    if request.url.scheme == "https":
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def check_alerts(app: App, config: DashboardConfig) -> int:
    """One look at the mailboxes, the queues and (Redis mode) the workers; announce alert changes on the
    webhook — a mailbox's, and "no worker alive" while work waits. Returns the number of POSTs."""
    from workers.liveness import redis_liveness  # the workers layer is read only where it is needed
    from workers.queues import queue_status

    queues, liveness = queue_status(app.settings), redis_liveness(app.settings)
    with app.sessions() as session:
        status = collect_status(session, queues=queues, alert_config=config.alerts, liveness=liveness)
    return notify_from_status(config.alerts, app.settings.data_dir, status, datetime.now(UTC))


async def _alert_loop(app: App, config: DashboardConfig) -> None:
    while True:
        try:
            await asyncio.to_thread(check_alerts, app, config)
        except Exception:  # the page must keep running whatever the webhook or the database does
            log.exception("alert check failed")
        await asyncio.sleep(config.alert_check_seconds)


def create_app(
    app: App,
    config: DashboardConfig | None = None,
    queue_reader: Callable[..., QueueSnapshot] = read_queues,
) -> FastAPI:
    """The dashboard for ``app``. ``config`` defaults to the environment's (``load_dashboard_config``)."""
    config = config or load_dashboard_config()
    if not config.has_login:
        raise ConfigError("set CRM_ADMIN_PASSWORD_HASH (see: crm-sync dashboard hash-password) or CRM_ADMIN_TOKEN")

    @contextlib.asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_alert_loop(app, config)) if config.alerts.webhook_url else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    api = FastAPI(title="crm-sync dashboard", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    api.state.dashboard = DashboardState(app, config, templates(), SessionCodec(config.session_key), queue_reader)
    api.include_router(router)
    api.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    api.add_exception_handler(LoginRequired, _login_required)
    api.add_exception_handler(CsrfRejected, _csrf_rejected)
    api.middleware("http")(_security_headers)
    check_routes(api)
    return api
