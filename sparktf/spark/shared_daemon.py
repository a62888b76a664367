"""A PySpark daemon whose workers the host's zygote forks (``SPARKTF_PRELOAD=shared``).

It speaks PySpark's daemon protocol to the JVM: it listens on a loopback TCP port (or a Unix
socket when ``PYTHON_UNIX_DOMAIN_ENABLED=true``) and reports it on stdout; each connection is
a request for a worker, handed to the zygote (:func:`sparktf.spark.zygote.hand_over`), whose
forked worker writes its pid on the connection; a pid read from stdin is a worker to kill;
stdin closed, or SIGTERM, ends the daemon. It imports neither TensorFlow nor PySpark's worker.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import uuid

from sparktf.spark import zygote


def _listen() -> tuple[socket.socket, str | None]:
    if os.environ.get("PYTHON_UNIX_DOMAIN_ENABLED", "false").lower() == "true":
        path = os.path.join(os.environ["PYTHON_WORKER_FACTORY_SOCK_DIR"],
                            f".{uuid.uuid4()}.sock")
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


def manager(conn: socket.socket) -> None:
    """Serve the JVM until it closes stdin; workers come from the zygote on ``conn``."""
    from pyspark.serializers import read_int, write_int, write_with_length

    os.setpgid(0, 0)
    listener, path = _listen()
    stdin = os.fdopen(sys.stdin.fileno(), "rb", 4)
    stdout = os.fdopen(sys.stdout.fileno(), "wb", 4)
    if path is not None:
        write_with_length(path.encode("utf-8"), stdout)
    else:
        write_int(listener.getsockname()[1], stdout)
    stdout.flush()

    def shutdown(*_: object) -> None:
        if path is not None and os.path.exists(path):
            os.remove(path)
        sys.exit(0)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    reuse = bool(os.environ.get("SPARK_REUSE_WORKER"))
    authenticated = path is not None  # a Unix socket needs no secret
    poller = select.poll()
    poller.register(0, select.POLLIN)
    poller.register(listener, select.POLLIN)
    while True:
        ready = {fd for fd, _ in poller.poll(1000)}
        if 0 in ready:
            try:
                pid = read_int(stdin)
            except EOFError:  # Spark told us to exit
                shutdown()
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if listener.fileno() in ready:
            task, _ = listener.accept()
            try:
                conn = _hand_over(conn, task, authenticated, reuse)
            except OSError as exc:  # no zygote at all: tell Spark, as a failed fork
                outfile = task.makefile(mode="wb")
                write_int(exc.errno or 1, outfile)
                outfile.flush()
                outfile.close()
            finally:
                task.close()


def _hand_over(conn: socket.socket, task: socket.socket, authenticated: bool,
               reuse: bool) -> socket.socket:
    """Hand ``task`` to the zygote, starting a new one if it is gone (idle, killed); the
    connection to use next."""
    try:
        zygote.hand_over(conn, task, authenticated=authenticated, reuse=reuse)
        return conn
    except OSError:
        conn.close()
    fresh = zygote.connect()
    if fresh is None:
        raise OSError("the sparktf zygote is gone and could not be started again")
    zygote.hand_over(fresh, task, authenticated=authenticated, reuse=reuse)
    return fresh
