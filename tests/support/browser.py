"""Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

No browser download and no websocket library: Debian's ``chromium`` reads CDP commands from file descriptor 3
and writes answers and events to descriptor 4, each message JSON followed by a NUL byte. Clicks are real
mouse events (``Input.dispatchMouseEvent``) at the element's centre, typing is ``Input.insertText``, so the page
is used as a person would use it (forms, cookies, redirects, CSP all apply).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class CdpError(RuntimeError):
    pass


class Browser:
    """One Chromium process with one page; ``close()`` ends it."""

    def __init__(self, binary: str, width: int = 1440, height: int = 900, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.profile = Path(tempfile.mkdtemp(prefix="crm-sync-chromium-"))
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # bash maps our pipe ends onto descriptors 3 and 4 (no preexec_fn: the test process has threads).
        script = f'exec "$0" "$@" 3<&{to_child_r} 4>&{from_child_w} {to_child_r}<&- {from_child_w}>&-'
        self._log = open(self.profile / "chromium.log", "wb")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            ["/bin/bash", "-c", script, binary, *FLAGS, f"--user-data-dir={self.profile / 'profile'}", "about:blank"],
            pass_fds=(to_child_r, from_child_w),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._ids = itertools.count(1)
        self._answers: dict[int, dict[str, Any]] = {}
        self._events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.page("Page.enable")
        self.page("Runtime.enable")
        self.page(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    # ------------------------------------------------------------------------------------------- protocol

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._from_child, "rb", buffering=0) as pipe:
            while True:
                chunk = pipe.read(65536)
                if not chunk:
                    break
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                with self._cond:
                    for raw in messages:
                        message = json.loads(raw)
                        if "id" in message:
                            self._answers[message["id"]] = message
                        else:
                            self._events.append(message)
                    self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send one command and wait for its answer."""
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while ident not in self._answers:
                if self._closed:
                    raise CdpError(f"chromium exited during {method}; see {self.profile / 'chromium.log'}")
                if not self._cond.wait(max(0.0, deadline - time.monotonic())):
                    raise CdpError(f"no answer to {method} within {self.timeout}s")
            answer = self._answers.pop(ident)
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def page(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.call(method, params, self.session)

    def mark(self) -> int:
        with self._cond:
            return len(self._events)

    def wait_event(self, method: str, after: int) -> dict[str, Any]:
        """The first event ``method`` of the page received after ``mark()`` returned ``after``."""
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while True:
                for event in self._events[after:]:
                    if event.get("method") == method and event.get("sessionId") == self.session:
                        return event
                if self._closed or not self._cond.wait(max(0.0, deadline - time.monotonic())):
                    raise CdpError(f"no {method} event within {self.timeout}s")

    # ------------------------------------------------------------------------------------------- actions

    def goto(self, url: str) -> None:
        mark = self.mark()
        answer = self.page("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise CdpError(f"cannot open {url}: {answer['errorText']}")
        self.wait_event("Page.loadEventFired", mark)

    def evaluate(self, expression: str) -> Any:
        answer = self.page("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in answer:
            raise CdpError(f"{expression}: {answer['exceptionDetails'].get('text')}")
        return answer["result"].get("value")

    def exists(self, selector: str) -> bool:
        return bool(self.evaluate(f"document.querySelector({json.dumps(selector)}) !== null"))

    def text(self, selector: str = "body") -> str:
        value = self.evaluate(f"(document.querySelector({json.dumps(selector)}) || {{innerText: ''}}).innerText")
        return str(value or "")

    def type(self, selector: str, text: str) -> None:
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.page("Input.insertText", {"text": text})

    def click(self, selector: str) -> None:
        """A real mouse click at the centre of the element (scrolled into view)."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()"
        )
        if box is None:
            raise CdpError(f"nothing matches {selector!r} on {self.evaluate('location.href')}")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.page(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box["x"], "y": box["y"], "button": "left", "clickCount": 1},
            )

    def click_and_wait(self, selector: str) -> None:
        """Click something that loads a new page (a form's submit button, a link) and wait for that page."""
        mark = self.mark()
        self.click(selector)
        self.wait_event("Page.loadEventFired", mark)

    def screenshot(self, path: Path) -> None:
        """A PNG of the whole page, not only the window."""
        size = self.page("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = self.page("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data["data"]))

    def close(self) -> None:
        try:
            if not self._closed and self.process.poll() is None:
                self.call("Browser.close")
        except (CdpError, OSError):
            pass
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)
        os.close(self._to_child)
        self._log.close()
        shutil.rmtree(self.profile, ignore_errors=True)
