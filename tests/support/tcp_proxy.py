"""A TCP proxy on 127.0.0.1 that breaks connections on purpose: network errors in the middle of a transfer.

``FaultProxy(target_port)`` listens on ``proxy.port`` and forwards every connection to 127.0.0.1:target_port.
Faults are queued with ``plan(*faults)``: each new connection takes the next fault, later connections pass
through untouched. A ``Fault(after, mode)`` lets ``after`` bytes of the server's answers through to the client
(counted over the whole connection, so it lands wherever the conversation is by then: greeting, login, a
listing, the middle of a message literal), then:

- ``close``: closes both sides (the client reads an early end of stream);
- ``reset``: closes both sides with an RST (the client gets "connection reset by peer");
- ``stall``: forwards nothing more in either direction and keeps the socket open (the client's timeout fires).

``down = True``: every new connection is accepted and closed at once (an outage: the server is unreachable);
``drop_connections()`` breaks the connections open now. ``faults_hit`` counts the faults that really fired (a
fault planned for a connection that ended before ``after`` bytes did not) and ``refused`` the connections
turned away while down, so a test can check that its faults happened.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal

Mode = Literal["close", "reset", "stall"]


@dataclass(frozen=True, slots=True)
class Fault:
    after: int  # bytes of the server's answers that get through first
    mode: Mode = "close"


class FaultProxy:
    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._links: set[_Link] = set()
        self._closed = threading.Event()
        self.down = False
        self.connections = 0
        self.faults_hit = 0
        self.refused = 0
        self._thread = threading.Thread(target=self._accept, name=f"fault-proxy-{self.port}", daemon=True)
        self._thread.start()

    # -- test API --------------------------------------------------------------------------------------
    def plan(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    @property
    def planned(self) -> int:
        """Faults not yet taken by a connection."""
        with self._lock:
            return len(self._faults)

    def drop_connections(self) -> None:
        with self._lock:
            links = list(self._links)
        for link in links:
            link.finish(reset=False)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.drop_connections()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- forwarding ------------------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                if self.down:
                    self.refused += 1
                    fault = None
                else:
                    fault = self._faults.popleft() if self._faults else Fault(-1)
            if fault is None:
                _abort(client, reset=False)
                continue
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                _abort(client, reset=True)  # the server is down: the client sees what it would see
                continue
            server.settimeout(None)
            _Link(self, client, server, fault).start()

    def _track(self, link: _Link) -> None:
        with self._lock:
            self._links.add(link)

    def _untrack(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)


class _Link:
    """One proxied connection: a thread per direction; the fault applies to the server → client direction."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, server: socket.socket, fault: Fault) -> None:
        self.proxy, self.client, self.server, self.fault = proxy, client, server, fault
        self.budget = fault.after  # bytes still allowed downstream; < 0: no fault
        self.stalled = threading.Event()
        self.done = threading.Event()

    def start(self) -> None:
        self.proxy._track(self)
        threading.Thread(target=self._pump, args=(self.client, self.server, False), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.server, self.client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, downstream: bool) -> None:
        try:
            while not self.done.is_set():
                data = source.recv(65536)
                if not data:
                    break
                if self.stalled.is_set():
                    continue  # swallowed: a stalled link forwards nothing until the client gives up
                if downstream and self.budget >= 0:
                    if len(data) >= self.budget:
                        sink.sendall(data[: self.budget])
                        self._fire()
                        return
                    self.budget -= len(data)
                sink.sendall(data)
        except OSError:
            pass
        self.finish(reset=False)

    def _fire(self) -> None:
        with self.proxy._lock:
            self.proxy.faults_hit += 1
        if self.fault.mode == "stall":
            self.stalled.set()  # keep both sockets open and forward nothing: the client times out
            return
        self.finish(reset=self.fault.mode == "reset")

    def finish(self, reset: bool) -> None:
        if self.done.is_set():
            return
        self.done.set()
        _abort(self.client, reset)
        _abort(self.server, reset=False)
        self.proxy._untrack(self)


def _abort(sock: socket.socket, reset: bool) -> None:
    # shutdown() wakes up the thread blocked in recv() on this socket (close() alone would not); SHUT_RD sends
    # nothing, so with SO_LINGER 0 the close() that follows sends an RST instead of a FIN.
    with contextlib.suppress(OSError):
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD if reset else socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
