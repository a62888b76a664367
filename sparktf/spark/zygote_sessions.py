"""The zygote's event loop: the sessions registered with it, their worker requests, the
workers it forked for them, and the kill requests their daemons relay.

Runs only in the zygote (:mod:`sparktf.spark.zygote`). Each session is the socket on which
Spark asks its daemon for workers, the daemon's stdout and stderr (the workers'), the
daemon's connection (kill requests; closed when Spark stops the daemon or goes away) and the
workers forked for it, each watched through a pidfd where the kernel has them.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from sparktf.spark import zygote

_PID = struct.Struct("!i")  # what Spark writes to its daemon's stdin: a worker to kill


@dataclass(eq=False)
class Session:
    """One registered daemon: what its workers inherit, and the workers forked for it."""

    control: socket.socket
    requests: socket.socket
    out_fd: int
    err_fd: int
    note: dict[str, Any]
    workers: dict[int, int | None] = field(default_factory=dict)  # pid -> pidfd
    pending: bytes = b""

    def raw_fds(self) -> list[int]:
        """Its descriptors that no socket object owns: stdout, stderr, the pidfds."""
        return [self.out_fd, self.err_fd, *(fd for fd in self.workers.values() if fd is not None)]

    def close(self, *, keep: frozenset[int] = frozenset()) -> None:
        self.control.close()
        self.requests.close()
        for fd in self.raw_fds():
            if fd not in keep:
                with contextlib.suppress(OSError):
                    os.close(fd)


class Sessions:
    """The zygote's sessions, served until none is left and nothing came for ``idle`` s."""

    def __init__(self, listener: socket.socket) -> None:
        self.listener = listener
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, ("daemon", None))
        self.sessions: list[Session] = []

    def run(self, idle: float) -> None:
        last = time.monotonic()
        while self.sessions or time.monotonic() - last < idle:
            for key, _ in self.selector.select(timeout=5.0):
                last = time.monotonic()
                kind, what = key.data
                getattr(self, f"_on_{kind}")(key.fileobj, what)

    def _on_daemon(self, listener: socket.socket, _: None) -> None:
        conn, _ = listener.accept()
        if _peer_uid(conn) != os.getuid():
            conn.close()
            return
        self.selector.register(conn, selectors.EVENT_READ, ("registration", None))

    def _on_registration(self, conn: socket.socket, _: None) -> None:
        try:
            note, fds = zygote.receive(conn)
            requests = socket.socket(fileno=fds[0])
        except (ConnectionError, OSError, ValueError, IndexError):
            self.selector.unregister(conn)
            conn.close()
            return
        session = Session(conn, requests, fds[1], fds[2], note)
        self.sessions.append(session)
        self.selector.modify(conn, selectors.EVENT_READ, ("control", session))
        self.selector.register(requests, selectors.EVENT_READ, ("request", session))

    def _on_control(self, conn: socket.socket, session: Session) -> None:
        try:
            data = conn.recv(4096)
        except OSError:
            data = b""
        if not data:  # Spark stopped the daemon, or is gone
            self._end(session)
            return
        session.pending += data
        while len(session.pending) >= _PID.size:
            (pid,) = _PID.unpack(session.pending[:_PID.size])
            session.pending = session.pending[_PID.size:]
            if pid in session.workers:  # only a worker of this session
                _kill(pid, session.workers[pid])

    def _on_request(self, requests: socket.socket, session: Session) -> None:
        try:
            task, _ = requests.accept()
        except OSError:
            return
        pid = os.fork()
        if pid == 0:
            self._forget(session, keep=task.fileno())
            zygote.worker(session.note, task.fileno(), session.out_fd, session.err_fd)
        task.close()
        try:
            pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:  # already over
            return
        except (AttributeError, OSError):  # no pidfds here: killed by pid
            pidfd = None
        session.workers[pid] = pidfd
        if pidfd is not None:
            self.selector.register(pidfd, selectors.EVENT_READ, ("exit", (session, pid)))

    def _on_exit(self, pidfd: int, what: tuple[Session, int]) -> None:
        session, pid = what
        self.selector.unregister(pidfd)
        os.close(pidfd)
        session.workers.pop(pid, None)

    def _end(self, session: Session) -> None:
        """The session's daemon is gone: close its socket and end its workers, as PySpark's
        daemon ends its own when it exits."""
        for pid, pidfd in session.workers.items():
            _kill(pid, pidfd)
            if pidfd is not None:
                self.selector.unregister(pidfd)
        self.selector.unregister(session.control)
        self.selector.unregister(session.requests)
        session.close()
        path = session.note.get("socket_path")
        if path:
            with contextlib.suppress(OSError):
                os.remove(path)
        self.sessions.remove(session)

    def _forget(self, mine: Session, *, keep: int) -> None:
        """In a forked worker: close every descriptor of the zygote's but the task socket
        ``keep`` and its session's stdout and stderr."""
        for key in list(self.selector.get_map().values()):
            if key.data[0] == "registration":  # another daemon's, half registered
                key.fileobj.close()  # type: ignore[union-attr]
        self.selector.close()
        self.listener.close()
        for session in self.sessions:
            session.close(keep=frozenset({keep, mine.out_fd, mine.err_fd}))


def _kill(pid: int, pidfd: int | None) -> None:
    with contextlib.suppress(OSError):
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]
