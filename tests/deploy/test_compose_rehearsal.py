"""Deployment rehearsal (issue 9): the services of docker-compose.yml, run as the image would run them.

No Docker engine runs on the development and CI machines (docs/deployment.md), so `docker compose up` itself
never runs here. This test does what it would do, up to the container boundary:

- the "image": the project installed (not editable) into a fresh virtual environment from exactly the paths
  the Dockerfile copies, started from an empty working directory, so a file the Dockerfile forgets to copy or
  the package forgets to ship fails here;
- each service's command, its environment (the Dockerfile's ``ENV``, the ``env_file`` made from
  `.env.example` as the docs say, the ``environment`` block with compose's ``${VAR:?…}`` interpolation) and
  the dashboard's health check, read from docker-compose.yml; only the host names ``postgres`` and ``redis``,
  the ``/data`` volume and the published port are pointed at this test's own servers and directories;
- the docs' one-machine steps: ``migrate`` (twice: it must be idempotent), the long-running services, an
  import, ``mailbox add … --secret-env``, ``status``; then mail is synced by the scheduler's first tick, new
  mail is picked up through the IDLE watcher, the dashboard logs in with the hash from ``.env``;
- ``docker compose stop``: SIGTERM to each service's main process (PID 1 in its container, which has no
  default action for SIGTERM: without a handler it would wait out the grace period and be killed), which
  must exit 0 within compose's 10 s grace period and leave no process behind.

Not covered here: the base image and the build inside it, file ownership in the volumes, networking between
containers.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import REPO
from tests.support.builders import message
from tests.support.dovecot import DovecotServer
from tests.support.servers import RedisServer, free_port
from tests.workers.conftest import new_postgres_database, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(600)]

PACKAGES = ("sync_service", "crm_store", "workers")  # what pyproject.toml ships
GRACE = 10.0  # docker compose stop's default grace period before SIGKILL
ADMIN_PASSWORD = "rehearsal-admin-pw"
MAIL_PASSWORD = "alice-mail-pw"
CUSTOMER = "wile@acme.example"
ACCOUNTS_CSV = "Name,Type,Domains,Territory,Owner\nACME,customer,acme.example,West,alice@example.com\n"


# -- reading the deployment files ---------------------------------------------------------------------------
def compose_file() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (INSTRUCTION, rest of the line); no continuation lines but RUN's."""
    lines: list[tuple[str, str]] = []
    for line in (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        word, _, rest = stripped.partition(" ")
        if word.isupper():
            lines.append((word, rest.strip()))
    return lines


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in dockerfile():
        if word == "ENV":
            env.update(pair.split("=", 1) for pair in rest.split())  # type: ignore[misc]
    return env


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:\?|:-)(?P<arg>[^}]*))?\}")


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's interpolation of ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` (from .env)."""

    def one(found: re.Match[str]) -> str:
        name, op, arg = found.group("name", "op", "arg")
        current = variables.get(name, "")
        if not current and op == ":?":
            raise AssertionError(f"compose would refuse to start: {arg}")
        return current or (arg if op == ":-" else "")

    return _VARIABLE.sub(one, value)


# -- the rehearsal's pieces ---------------------------------------------------------------------------------
@dataclass
class Image:
    """The image's Python: a virtual environment with the project installed from what the Dockerfile copies."""

    root: Path
    workdir: Path  # WORKDIR: holds no source, so only the installed package can be imported

    @property
    def entrypoint(self) -> list[str]:
        rest = next(rest for word, rest in dockerfile() if word == "ENTRYPOINT")
        command = json.loads(rest)
        assert command == ["crm-sync"], command
        return [str(self.root / "bin" / command[0])]

    @property
    def python(self) -> str:
        return str(self.root / "bin" / "python")


@dataclass
class Service:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@dataclass
class Deployment:
    image: Image
    compose: dict[str, Any]
    dotenv: dict[str, str]
    database_url: str
    broker_url: str
    volume: Path
    logs: Path
    dashboard_port: int
    running: list[Service] = field(default_factory=list)

    def env(self, service: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The service's container environment, with the hosts, the volume and the port mapped to this test's."""
        spec = self.compose["services"][service]
        env = {"PATH": f"{self.image.root / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": str(self.image.workdir)}
        env |= dockerfile_env()
        if spec.get("env_file"):
            env |= self.dotenv
        env |= {k: interpolate(str(v), self.dotenv) for k, v in (spec.get("environment") or {}).items()}
        env |= dict(extra or {})
        wanted = make_url(env["CRM_DATABASE_URL"])
        assert (wanted.host, wanted.port) == ("postgres", 5432), wanted
        ours = make_url(self.database_url)
        env["CRM_DATABASE_URL"] = wanted.set(host=ours.host, port=ours.port, database=ours.database).render_as_string(
            hide_password=False
        )
        assert env["CRM_BROKER_URL"].startswith("redis://redis:6379/"), env["CRM_BROKER_URL"]
        env["CRM_BROKER_URL"] = self.broker_url
        return {k: self.in_volume(v) for k, v in env.items()}

    def in_volume(self, value: str) -> str:
        return str(self.volume) + value[len("/data") :] if value == "/data" or value.startswith("/data/") else value

    def command(self, service: str) -> list[str]:
        command = [self.in_volume(str(part)) for part in self.compose["services"][service]["command"]]
        if service == "dashboard":  # the published port, on loopback only (compose: 127.0.0.1:8080:8080)
            assert self.compose["services"]["dashboard"]["ports"] == ["127.0.0.1:8080:8080"]
            command = [{"0.0.0.0": "127.0.0.1", "8080": str(self.dashboard_port)}.get(p, p) for p in command]
        return command

    def run(self, service: str, *args: str, extra: Mapping[str, str] | None = None, stdin: str = "") -> str:
        """``docker compose run --rm SERVICE ARGS`` (the image's entrypoint with ARGS); returns standard output."""
        done = subprocess.run(
            [*self.image.entrypoint, *(self.in_volume(a) for a in args)],
            env=self.env(service, extra),
            cwd=self.image.workdir,
            input=stdin.encode(),
            capture_output=True,
            timeout=120,
        )
        out, err = done.stdout.decode(), done.stderr.decode()
        assert done.returncode == 0, f"{service} {' '.join(args)} exited {done.returncode}: {err.strip()[-2000:]}"
        return out

    def start(self, service: str) -> Service:
        log = self.logs / f"{service}.log"
        with log.open("ab") as handle:
            popen = subprocess.Popen(
                [*self.image.entrypoint, *self.command(service)],
                env=self.env(service),
                cwd=self.image.workdir,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, as its own container
            )
        started = Service(service, popen, log)
        self.running.append(started)
        return started

    def healthcheck(self, service: str) -> bool:
        test = self.compose["services"][service]["healthcheck"]["test"]
        assert test[0] == "CMD", test
        argv = [part.replace(":8080/", f":{self.dashboard_port}/") for part in test[1:]]
        argv[0] = self.image.python if argv[0] == "python" else argv[0]
        return subprocess.run(argv, capture_output=True, timeout=30, cwd=self.image.workdir).returncode == 0

    def stop(self, service: Service) -> tuple[int | None, float, bool]:
        """``docker compose stop``: SIGTERM to the main process; (exit code, seconds, anything left in its group)."""
        started = time.monotonic()
        if service.popen.poll() is None:
            service.popen.send_signal(signal.SIGTERM)
        try:
            code: int | None = service.popen.wait(timeout=GRACE)
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - started
        left = _group_alive(service.popen.pid)
        if code is None or left:
            _kill_group(service.popen.pid)
        return code, took, left


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


# -- fixtures -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """``docker compose build``, as far as Python goes: COPY what the Dockerfile copies, then ``pip install .``.

    The dependencies come from this machine's site-packages (the image downloads them; CI installed the same
    ones from pyproject.toml), the project itself is built and installed from the copy, not linked."""
    base = tmp_path_factory.mktemp("image")
    context = base / "context"
    context.mkdir()
    for word, rest in dockerfile():
        if word == "COPY":
            *sources, _target = rest.split()
            for source in sources:
                origin = REPO / source
                assert origin.exists(), f"the Dockerfile copies {source}, which does not exist"
                if origin.is_dir():
                    shutil.copytree(origin, context / source, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(origin, context / source)
    install = [word for word, _ in dockerfile()].count("RUN")
    assert install == 1 and any(word == "RUN" and rest.startswith("pip install . ") for word, rest in dockerfile())
    root = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(root)], check=True)
    done = subprocess.run(
        [str(root / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check", "."],
        cwd=context,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    workdir = base / "app"
    workdir.mkdir()
    # This machine's own (editable) install stays visible through the system site-packages: each package must
    # be the installed copy, or the Dockerfile did not copy it.
    where = subprocess.run(
        [
            str(root / "bin" / "python"),
            "-c",
            f"import {', '.join(PACKAGES)}; print(*(m.__file__ for m in ({', '.join(PACKAGES)})))",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert where.returncode == 0, where.stderr
    for package, path in zip(PACKAGES, where.stdout.split(), strict=True):
        assert Path(path).is_relative_to(root), f"{package} is not in the image: {path}"
    return Image(root, workdir)


@pytest.fixture
def deployment(image: Image, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """The .env of docs/deployment.md, a database of its own on the test PostgreSQL, a Redis, a volume."""
    from tests.conftest import _backends

    if "postgresql" not in _backends():
        pytest.skip("the deployment runs on PostgreSQL (CRM_TEST_BACKENDS)")
    server_url: str = request.getfixturevalue("postgres_server")
    database_url = new_postgres_database(server_url)
    redis = RedisServer()
    redis.start()
    volume, logs = tmp_path / "documents-volume", tmp_path / "logs"
    volume.mkdir()
    logs.mkdir()
    dotenv = read_env_file(REPO / ".env.example")  # cp .env.example .env, then fill in what the docs say
    deployment = Deployment(image, compose_file(), dotenv, database_url, redis.url, volume, logs, free_port())
    try:
        yield deployment
    finally:
        for service in deployment.running:
            _kill_group(service.popen.pid)
            service.popen.wait(timeout=30)
        redis.close()
        admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(database_url).database}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    server = DovecotServer({"alice": MAIL_PASSWORD})
    server.start()
    try:
        yield server
    finally:
        server.close()


def _mail(n: int) -> bytes:
    return message(f"rehearsal-{n}@acme.example", CUSTOMER, ["alice@example.com"], f"Rocket order {n}")


def _activities(deploy: Deployment) -> list[dict[str, Any]]:
    found = json.loads(deploy.run("migrate", "export", "activities", "--format", "json"))
    assert isinstance(found, list)
    return found


# -- the rehearsal ------------------------------------------------------------------------------------------
def test_the_compose_services_deploy_sync_and_stop_cleanly(deployment: Deployment, dovecot: DovecotServer) -> None:
    deploy = deployment
    services = deploy.compose["services"]
    assert {"postgres", "redis", "migrate", "worker", "scheduler", "watch", "dashboard"} <= set(services)
    assert services["migrate"]["command"] == ["init"] and services["migrate"]["restart"] == "no"
    for name in ("worker", "scheduler", "watch", "dashboard"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}

    # .env as docs/deployment.md says: a key from `crm-sync secret-key`, a hash from `dashboard hash-password`
    deploy.dotenv["POSTGRES_PASSWORD"] = "rehearsal-db-pw"
    deploy.dotenv["CRM_SECRET_KEY"] = deploy.run("migrate", "secret-key").strip()
    deploy.dotenv["CRM_ADMIN_PASSWORD_HASH"] = deploy.run(
        "migrate", "dashboard", "hash-password", stdin=ADMIN_PASSWORD + "\n"
    ).strip()

    # docker compose up -d: the migration job first (it is run again after every upgrade), then the rest
    assert "lookup values" in deploy.run("migrate", *services["migrate"]["command"])
    assert "added 0 lookup values and 0 processes" in deploy.run("migrate", *services["migrate"]["command"])
    running = {name: deploy.start(name) for name in ("worker", "scheduler", "watch", "dashboard")}
    every_log = lambda: "\n".join(f"== {s.name}\n{s.text()[-1500:]}" for s in running.values())  # noqa: E731
    wait_for(lambda: deploy.healthcheck("dashboard"), 60, "the dashboard's health check", every=0.3, details=every_log)

    # the admin's first steps (docs/deployment.md, "One machine")
    (deploy.volume / "accounts.csv").write_text(ACCOUNTS_CSV, encoding="utf-8")
    deploy.run("migrate", "import", "accounts", "/data/accounts.csv")
    dovecot.append("alice", [_mail(1), _mail(2), _mail(3)])
    source = dovecot.url("alice", query="idle=1")
    deploy.run(
        "migrate",
        *("mailbox", "add", "alice", "--owner", "alice@example.com", "--source", source),
        *("--secret-env", "ALICE_PASSWORD"),
        extra={"ALICE_PASSWORD": MAIL_PASSWORD},  # docker compose run -e ALICE_PASSWORD …
    )
    assert MAIL_PASSWORD not in "".join(s.text() for s in running.values())

    # the scheduler's first tick queues the new mailbox; the workers fetch, match and store it
    wait_for(
        lambda: len(_activities(deploy)) == 3, 90, "the first sync through the workers", every=0.3, details=every_log
    )
    assert {a["subject"] for a in _activities(deploy)} == {f"Rocket order {n}" for n in (1, 2, 3)}
    status = deploy.run("scheduler", "status")  # docker compose exec scheduler crm-sync status
    assert "alice" in status
    assert any(deploy.volume.rglob("*.pack")), "the documents are not in the volume"

    # new mail is picked up by the IDLE watcher, long before the scheduler's 300 s interval
    wait_for(
        lambda: "watching alice" in running["watch"].text(),
        60,
        "the watcher watching alice",
        every=0.3,
        details=every_log,
    )
    time.sleep(1.0)  # its IDLE command is sent right after it logs
    dovecot.append("alice", [_mail(4)])
    wait_for(lambda: len(_activities(deploy)) == 4, 60, "a sync after IDLE", every=0.3, details=every_log)
    assert "sync enqueued after IDLE" in running["watch"].text()

    # the dashboard: the login of .env's hash, the mailbox on the page
    with httpx.Client(base_url=f"http://127.0.0.1:{deploy.dashboard_port}", follow_redirects=True) as client:
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token, page.text[:500]
        answer = client.post("/login", data={"csrf_token": token.group(1), "password": ADMIN_PASSWORD, "next": "/"})
        assert answer.status_code == 200 and "alice" in answer.text, answer.status_code

    # docker compose stop: SIGTERM to PID 1, SIGKILL after the grace period
    for name, service in running.items():
        code, took, left = deploy.stop(service)
        # uvicorn (the dashboard) raises the SIGTERM again once it has shut down: as PID 1 that is ignored and
        # it exits 0; here it ends the process. Either way its shutdown has completed.
        clean = code == 0 or (code == -signal.SIGTERM and "Application shutdown complete" in service.text())
        assert clean and not left, (
            f"{name}: exit {code} after {took:.1f}s, processes left: {left}\n{service.text()[-3000:]}"
        )
