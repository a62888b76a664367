"""One TensorFlow-preloaded process per host that the task workers of every session fork from.

Spark Connect gives each client session its own PySpark daemon on the server, kept until
the server stops (SPARK-54055), so with :mod:`sparktf.spark.daemon` each session pays
TensorFlow's import (3-4 s) again and keeps its own copy (~400 MiB). With
``SPARKTF_PRELOAD=shared`` in the server's environment, a session's daemon preloads nothing:
it *registers* with the host's zygote (one long-lived process per host, user and
installation: interpreter, sparktf, PySpark and TensorFlow files, which imported TensorFlow
once) and hands it the socket on which Spark asks for workers, its stdout and stderr, and
its environment and working directory (:mod:`sparktf.spark.shared_daemon`). The zygote
accepts those requests itself and forks a worker for each: the worker takes the session's
environment (its secret, its artifact folder on ``sys.path``), tells Spark its process id on
the task socket, and runs PySpark's worker loop, exactly as a worker forked by the daemon
would. The daemon then replaces itself with ``cat``, relaying to the zygote the pids of
workers Spark asks to kill (its stdin); it ends when Spark stops it or goes away, and the
zygote then closes that session's socket and ends its workers. A session costs the server a
``cat`` process (well under 1 MiB), not a Python daemon.

The zygote listens on an abstract Unix socket (no file; one per network namespace), serves
only processes of its own user (``SO_PEERCRED``), and exits after :data:`IDLE_SECONDS`
without a session or a request. The first daemon that finds none starts it (a detached
process) and waits for it; should that fail, the daemon forks its workers itself. Should the
zygote die (killed), the workers it forked serve on; Spark finds the sessions' sockets
closed at its next request for a new worker and starts their daemons again (two warnings in
its log), which start a new zygote. A kill request Spark relays meanwhile ends that relay,
and Spark's next one to it fails the task that sent it (a write to a closed pipe).
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import time
from typing import Any

IDLE_SECONDS = 600.0  #: the zygote exits after this long without a session or a request
START_SECONDS = 60.0  #: how long a daemon waits for a zygote it started
_HEADER = struct.Struct("!I")
ACK = _HEADER.pack(0)  #: the zygote's answer to a registration it serves


def address() -> str:
    """The zygote's abstract socket name for this user and installation."""
    import importlib.util

    parts = [sys.executable, str(os.getuid())]
    for name in ("sparktf", "pyspark", "tensorflow"):
        spec = importlib.util.find_spec(name)
        parts.append(str(spec.origin if spec else None))
    parts += [f"{k}={os.environ.get(k, '')}" for k in ("TF_ENABLE_ONEDNN_OPTS",
                                                      "TF_CPP_MIN_LOG_LEVEL")]
    digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return f"sparktf-zygote-{digest}"  # bound with a leading NUL: Linux's abstract names


# ---- daemon side -------------------------------------------------------------------------

def connect(timeout: float = START_SECONDS) -> socket.socket | None:
    """A connection to this host's zygote, started if none runs; None if it cannot be."""
    name = address()
    found = _try(name)
    if found is not None:
        return found
    subprocess.Popen([sys.executable, "-m", "sparktf.spark.zygote", name],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.05)
        found = _try(name)
        if found is not None:
            return found
    return None


def _try(name: str) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(f"\0{name}")
    except OSError:
        conn.close()
        return None
    return conn


def register(zygote: socket.socket, listener: socket.socket, *, socket_path: str | None,
             authenticated: bool, reuse: bool) -> None:
    """Hand the zygote this session's worker-request socket ``listener`` (and this process's
    stdout, stderr, environment and working directory); returns once it serves them."""
    note = json.dumps({"env": dict(os.environ), "cwd": os.getcwd(), "argv": sys.argv,
                       "path": sys.path, "authenticated": authenticated, "reuse": reuse,
                       "socket_path": socket_path}).encode()
    fds = array.array("i", [listener.fileno(), 1, 2])
    zygote.sendmsg([_HEADER.pack(len(note)), note],
                   [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
    _read_exact(zygote, _HEADER.size)  # the zygote's acknowledgement


def _read_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the sparktf zygote closed the connection")
        data += chunk
    return data


# ---- zygote side -------------------------------------------------------------------------

def serve(name: str) -> None:
    """Preload, then serve the sessions that register, until idle."""
    import resource

    from sparktf.spark.daemon import preload
    from sparktf.spark.zygote_sessions import Sessions

    preload()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(f"\0{name}")
    except OSError:  # another zygote won the race
        return
    listener.listen(128)
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)  # a few descriptors a session
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile[1], nofile[1]))
    Sessions(listener, nofile=nofile).run(IDLE_SECONDS)
    listener.close()  # before the interpreter's slow exit: a daemon then starts another


def receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """A daemon's registration: its note and the three descriptors that came with it
    (closed again if anything is amiss)."""
    fds = array.array("i")
    head, ancillary, flags, _ = conn.recvmsg(_HEADER.size,
                                             socket.CMSG_SPACE(3 * fds.itemsize))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - (len(data) % fds.itemsize)])
    try:
        if not head:
            raise ConnectionError("daemon gone")
        if len(fds) != 3 or flags & socket.MSG_CTRUNC:
            raise ValueError(f"expected 3 descriptors, found {len(fds)}")
        head += _read_exact(conn, _HEADER.size - len(head))
        note = json.loads(_read_exact(conn, _HEADER.unpack(head)[0]))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return note, list(fds)


def worker(note: dict[str, Any], task_fd: int, out_fd: int, err_fd: int) -> None:
    """In a forked child: become the session's worker for the task socket ``task_fd``."""
    code = 1
    try:
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        with open(os.devnull, encoding="utf-8") as devnull:
            os.dup2(devnull.fileno(), 0)
        os.environ.clear()
        os.environ.update(note["env"])
        with contextlib.suppress(OSError):
            os.chdir(note["cwd"])
        sys.argv = note["argv"]
        sys.path[:] = note["path"]
        sock = socket.socket(fileno=task_fd)
        code = _run(sock, note["authenticated"], note["reuse"])
    except BaseException:  # noqa: BLE001 - reported on the session's stderr, as PySpark does
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _run(sock: socket.socket, authenticated: bool, reuse: bool) -> int:
    """PySpark's worker loop on ``sock``, as its daemon runs it in a forked child."""
    import gc

    from pyspark.serializers import write_int

    from sparktf.spark.daemon import patched_worker

    outfile = sock.makefile(mode="wb")
    write_int(os.getpid(), outfile)  # Spark learns the worker's pid from its socket
    outfile.flush()
    outfile.close()
    serve_task = patched_worker()
    while True:
        code = serve_task(sock, authenticated)
        if code == 0:
            authenticated = True
        if not reuse or code:
            with contextlib.suppress(Exception):
                while sock.recv(1024):
                    pass
            return 0
        gc.collect()


if __name__ == "__main__":
    serve(sys.argv[1])
