"""The zygote's event loop: the sessions registered with it, their worker requests, the
workers it forked for them, and the kill requests their daemons relay.

Runs only in the zygote (:mod:`sparktf.spark.zygote`). Each session is the socket on which
Spark asks its daemon for workers, the daemon's stdout and stderr (the workers'; a request
the zygote cannot serve is reported there, in the executor's log), the daemon's connection
(kill requests; closed when Spark stops the daemon or goes away) and the workers forked for
it. Workers are reaped here (``waitpid``), so a pid Spark asks to kill is never one the
kernel gave to another process meanwhile; a pidfd per worker, where the kernel has them,
wakes the loop when one exits.
"""

from __future__ import annotations

import contextlib
import errno
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
    workers: dict[int, int | None] = field(default_factory=dict)  # unreaped pid -> pidfd
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

    def report(self, message: str) -> None:
        """A line on the daemon's stderr (Spark's executor log)."""
        with contextlib.suppress(OSError):
            os.write(self.err_fd, f"sparktf zygote: {message}\n".encode())


class Sessions:
    """The zygote's sessions, served until none is left and nothing came for ``idle`` s;
    ``nofile``: the descriptor limit its workers get back (the zygote raises its own)."""

    def __init__(self, listener: socket.socket, *, nofile: tuple[int, int] | None = None) -> None:
        self.listener = listener
        self.nofile = nofile
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, ("daemon", None))
        self.sessions: list[Session] = []
        self.owner: dict[int, Session] = {}  # unreaped worker pid -> its session

    def run(self, idle: float) -> None:
        last = time.monotonic()
        while self.sessions or time.monotonic() - last < idle:
            for key, _ in self.selector.select(timeout=5.0):
                if self.selector.get_map().get(key.fd) is not key:
                    continue  # closed by an earlier event of this batch
                last = time.monotonic()
                kind, what = key.data
                try:
                    getattr(self, f"_on_{kind}")(key.fileobj, what)
                except Exception as exc:  # noqa: BLE001 - one request's failure, not all
                    if isinstance(what, Session):
                        what.report(f"{kind} failed: {exc!r}")
            self._reap()

    def _on_daemon(self, listener: socket.socket, _: None) -> None:
        try:
            conn, _ = listener.accept()
        except OSError:  # aborted, or out of descriptors: the daemon preloads itself
            return
        if _peer_uid(conn) != os.getuid():
            conn.close()
            return
        conn.settimeout(5.0)  # a registration that stalls cannot hold up the others
        self.selector.register(conn, selectors.EVENT_READ, ("registration", None))

    def _on_registration(self, conn: socket.socket, _: None) -> None:
        self.selector.unregister(conn)
        try:
            note, fds = zygote.receive(conn)
        except (ConnectionError, OSError, ValueError):
            conn.close()
            return
        session = Session(conn, socket.socket(fileno=fds[0]), fds[1], fds[2], note)
        try:
            conn.sendall(zygote.ACK)
        except OSError:
            session.close()
            return
        self.sessions.append(session)
        self.selector.register(conn, selectors.EVENT_READ, ("control", session))
        self.selector.register(session.requests, selectors.EVENT_READ, ("request", session))

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
            if pid in session.workers:  # a worker of this session, not reaped: still its pid
                _kill(pid, session.workers[pid])

    def _on_request(self, requests: socket.socket, session: Session) -> None:
        try:
            task, _ = requests.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        except OSError as exc:  # out of descriptors: Spark's request waits in the backlog
            session.report(f"cannot take a worker request: {exc}")
            time.sleep(0.5)
            return
        with task:
            pid = self._fork(task, session)
        if pid is None:
            return
        try:
            pidfd: int | None = os.pidfd_open(pid)
        except (AttributeError, OSError):  # no pidfds here: the loop's timeout reaps
            pidfd = None
        session.workers[pid] = pidfd
        self.owner[pid] = session
        if pidfd is not None:
            self.selector.register(pidfd, selectors.EVENT_READ, ("exit", pid))

    def _fork(self, task: socket.socket, session: Session) -> int | None:
        """Fork the worker for ``task``; its pid, or None when no process could be made
        (Spark is told, as PySpark's daemon tells it, with the error's negative code)."""
        for attempt in range(2):
            try:
                pid = os.fork()
                break
            except OSError as exc:
                if exc.errno == errno.EAGAIN and attempt == 0:
                    time.sleep(1)  # as PySpark's daemon: the process table may free up
                    continue
                session.report(f"cannot fork a worker: {exc}")
                with contextlib.suppress(OSError):
                    task.sendall(_PID.pack(-(exc.errno or 1)))
                return None
        if pid == 0:  # never back in the zygote's loop
            try:
                self._forget(session, keep=task.fileno())
                zygote.worker(session.note, task.fileno(), session.out_fd, session.err_fd)
            finally:
                os._exit(1)
        return pid

    def _on_exit(self, pidfd: int, pid: int) -> None:
        """A worker ended: :meth:`_reap` takes it (and closes ``pidfd``) after this batch."""

    def _reap(self) -> None:
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            session = self.owner.pop(pid, None)
            pidfd = session.workers.pop(pid, None) if session is not None else None
            if pidfd is not None:
                self.selector.unregister(pidfd)
                os.close(pidfd)

    def _end(self, session: Session) -> None:
        """The session's daemon is gone: close its socket and end its workers, as PySpark's
        daemon ends its own when it exits (they are reaped as they go)."""
        for pid, pidfd in session.workers.items():
            _kill(pid, pidfd)
            if pidfd is not None:
                self.selector.unregister(pidfd)
        self.selector.unregister(session.control)
        self.selector.unregister(session.requests)
        session.close()
        session.workers = dict.fromkeys(session.workers)  # their pidfds closed
        path = session.note.get("socket_path")
        if path:
            with contextlib.suppress(OSError):
                os.remove(path)
        self.sessions.remove(session)

    def _forget(self, mine: Session, *, keep: int) -> None:
        """In a forked worker: close every descriptor of the zygote's but the task socket
        ``keep`` and its session's stdout and stderr; give back the descriptor limit."""
        for key in list(self.selector.get_map().values()):
            if key.data[0] == "registration":  # another daemon's, half registered
                key.fileobj.close()  # type: ignore[union-attr]
        self.selector.close()
        self.listener.close()
        for session in self.sessions:
            session.close(keep=frozenset({keep, mine.out_fd, mine.err_fd}))
        if self.nofile is not None:
            import resource

            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, self.nofile)


def _kill(pid: int, pidfd: int | None) -> None:
    with contextlib.suppress(OSError):
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)


def _peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]
