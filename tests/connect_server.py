"""A Spark Connect server for tests, started with PySpark's own ``sbin`` scripts.

The server's logs, pid file and local directories live in a folder of its own (never in
the virtual environment). :meth:`ConnectServer.stop` stops it with ``stop-connect-server.sh``
and then checks that the JVM and every process it started (Python workers and daemons) are
gone; it ends any straggler by its pid.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyspark

from sparktf.spark.session import ARROW_JAVA_OPTIONS, DAEMON

SPARK_HOME = Path(pyspark.__file__).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    tree, found, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class ConnectServer:
    """``sbin/start-connect-server.sh --master local[2]`` on 127.0.0.1, a free port."""

    def __init__(self, folder: Path, *, python: str = sys.executable) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"sc://127.0.0.1:{self.port}"
        self.python = python
        self.pid: int | None = None
        self.env = dict(os.environ)
        self.env.update(
            SPARK_HOME=str(SPARK_HOME),
            SPARK_LOG_DIR=str(folder / "logs"),
            SPARK_PID_DIR=str(folder / "pids"),
            SPARK_LOCAL_DIRS=str(folder / "local"),
            SPARK_IDENT_STRING=f"sparktf-test-{self.port}",
            SPARK_LOCAL_IP="127.0.0.1",
            # Connect's planner starts the Python of UDFs and data sources from this variable
            # (or PYSPARK_DRIVER_PYTHON, else `python3`), not from spark.pyspark.python
            PYSPARK_PYTHON=python,
            # the Python workers import this checkout of sparktf
            PYTHONPATH=os.pathsep.join(
                [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
            ).rstrip(os.pathsep),
        )
        self.env.pop("SPARK_REMOTE", None)
        self.env.pop("SPARK_CONNECT_MODE_ENABLED", None)

    def command(self) -> list[str]:
        arrow = " ".join(ARROW_JAVA_OPTIONS)
        confs = {
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(self.port),
            "spark.pyspark.python": self.python,
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.driver.extraJavaOptions": arrow,
            "spark.executor.extraJavaOptions": arrow,
            "spark.executorEnv.TF_CPP_MIN_LOG_LEVEL": "2",
            DAEMON[0]: DAEMON[1],  # as the README's start command
        }
        args = [str(SPARK_HOME / "sbin" / "start-connect-server.sh"), "--master", "local[2]"]
        for key, value in confs.items():
            args += ["--conf", f"{key}={value}"]
        return args

    def log_tail(self, lines: int = 40) -> str:
        logs = sorted((self.folder / "logs").glob("*.out"))
        if not logs:
            return "(no log)"
        return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:])

    def start(self, timeout: float = 90.0) -> ConnectServer:
        for sub in ("logs", "pids", "local"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        subprocess.run(self.command(), env=self.env, check=True, capture_output=True,
                       timeout=60)
        pid_files = list((self.folder / "pids").glob("*.pid"))
        if pid_files:
            self.pid = int(pid_files[0].read_text().strip())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid is not None and not alive(self.pid):
                raise RuntimeError(f"Connect server exited at start:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"Connect server not listening after {timeout} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> list[int]:
        """Stop the server; returns the pids that had to be killed (none if it stopped)."""
        if self.pid is None:
            return []
        tree = descendants(self.pid)
        subprocess.run([str(SPARK_HOME / "sbin" / "stop-connect-server.sh")], env=self.env,
                       capture_output=True, timeout=60)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(alive(p) for p in tree):
            time.sleep(0.2)
        left = [p for p in tree if alive(p)]
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.pid = None
        return left
