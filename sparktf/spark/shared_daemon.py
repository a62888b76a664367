"""A session's PySpark daemon under ``SPARKTF_PRELOAD=shared``: it registers with the host's
zygote, then becomes a ``cat`` that relays Spark's kill requests to it.

Spark starts a daemon per executor and session and talks to it as PySpark's daemon protocol
says: the daemon reports, on stdout, a loopback TCP port (or a Unix socket when
``PYTHON_UNIX_DOMAIN_ENABLED=true``) where Spark connects for each worker; Spark writes the
pid of a worker to kill on its stdin, closes stdin when it goes away, and sends SIGTERM to
stop it. Here the daemon makes that socket, hands it to the zygote
(:func:`sparktf.spark.zygote.register`), which accepts Spark's requests and forks the
workers, reports it, and then executes ``cat`` with stdout on its connection to the zygote:
the kill requests reach the zygote, and the zygote learns that the daemon ended (stopped by
Spark, or stdin closed) when that connection closes. The process Spark waits on stays the
one it started, at a fraction of a Python interpreter's memory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import struct
import sys
import uuid

from sparktf.spark import zygote

#: The relay when no ``cat`` is on PATH: Python without site packages.
_RELAY = "import os\nwhile (b := os.read(0, 65536)):\n    os.write(1, b)"


def _listen() -> tuple[socket.socket, str | None]:
    if os.environ.get("PYTHON_UNIX_DOMAIN_ENABLED", "false").lower() == "true":
        path = os.path.abspath(os.path.join(os.environ["PYTHON_WORKER_FACTORY_SOCK_DIR"],
                                            f".{uuid.uuid4()}.sock"))
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
    elif os.environ.get("SPARK_PREFER_IPV6", "false").lower() == "true":
        path = None
        listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        listener.bind(("::1", 0, 0, 0))
    else:
        path = None
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
    listener.listen(max(1024, socket.SOMAXCONN))
    return listener, path


def serve(conn: socket.socket) -> bool:
    """Register with the zygote on ``conn``, report the socket and become the relay (never
    returns then); False if the zygote would not take the session."""
    listener, path = _listen()
    try:
        zygote.register(conn, listener, socket_path=path, authenticated=path is not None,
                        reuse=bool(os.environ.get("SPARK_REUSE_WORKER")))
    except OSError:  # ConnectionError included: the zygote went away meanwhile
        listener.close()
        if path is not None:
            os.remove(path)
        return False
    if path is not None:  # PySpark's write_with_length / write_int, on the raw stdout
        encoded = path.encode("utf-8")
        os.write(1, struct.pack("!i", len(encoded)) + encoded)
    else:
        os.write(1, struct.pack("!i", listener.getsockname()[1]))
    listener.close()  # the zygote has its own copy
    _relay(conn)
    return True  # not reached


def _relay(conn: socket.socket) -> None:
    """Become ``cat``: Spark's stdin to the zygote's connection, until either side ends.

    Named ``sparktf-daemon-relay`` in ``ps -f`` where ``cat`` is its own program (a
    multi-call binary such as BusyBox picks its program by that name, so it keeps
    ``cat``); Python without site packages where there is none.
    """
    os.dup2(conn.fileno(), 1)
    os.setpgid(0, 0)  # as PySpark's daemon: out of the JVM's process group
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as PySpark's daemon (kept across exec)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # the zygote gone: end quietly
    cat = shutil.which("cat")
    if cat is not None:
        with contextlib.suppress(OSError):  # not executable after all: Python's relay
            os.execv(cat, [relay_name(cat)])
    os.execv(sys.executable, [sys.executable, "-S", "-E", "-c", _RELAY])


def relay_name(cat: str) -> str:
    """The name the relay runs ``cat`` under: ``cat`` itself where it is a multi-call
    binary (BusyBox, uutils: they pick the program by this name)."""
    return "sparktf-daemon-relay" if os.path.basename(os.path.realpath(cat)) == "cat" else "cat"
