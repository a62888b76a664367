"""A throw-away Spark Standalone cluster on 127.0.0.1 for tests.

Started with pyspark's own ``sbin/spark-daemon.sh`` (pip's pyspark has no start-master.sh),
with private pid, log and work directories, and always stopped afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyspark

SPARK_HOME = Path(pyspark.__file__).parent
MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"
EXECUTOR = "org.apache.spark.executor.CoarseGrainedExecutorBackend"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    url: str
    env: dict[str, str]
    root: Path
    ui: int

    def worker_pids(self) -> list[int]:
        """The Worker JVMs' pids, from the pid files ``spark-daemon.sh`` wrote."""
        return sorted(int(p.read_text().strip())
                      for p in (self.root / "pids").glob(f"*{WORKER}*.pid"))

    def alive_workers(self) -> int:
        """How many workers the master counts as alive (from its JSON status page)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui}/json/", timeout=5) as page:
            status = json.load(page)
        return sum(1 for w in status.get("workers", []) if w.get("state") == "ALIVE")


def _daemons(env: dict[str, str], cls: str, runs: list[tuple[int, list[str]]]) -> None:
    """``spark-daemon.sh start`` for each ``(instance, args)`` at once (each takes seconds)."""
    script = str(SPARK_HOME / "sbin" / "spark-daemon.sh")
    started = [subprocess.Popen(["bash", script, "start", cls, str(i), *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for i, args in runs]
    for process in started:
        if process.wait(timeout=120) != 0:
            raise RuntimeError(f"spark-daemon.sh start {cls} failed ({process.returncode})")


def _wait_for(port: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def _wait_for_workers(cluster: Cluster, count: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if cluster.alive_workers() >= count:
                return
        time.sleep(0.3)
    raise TimeoutError(f"{count} workers did not register with {cluster.url} in {timeout} s")


def _stop(pid: int, timeout: float = 15) -> None:
    """SIGTERM ``pid``, wait for it to go, SIGKILL it when it does not."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + timeout
        while time.time() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@contextmanager
def standalone(
    root: Path, *, workers: int = 1, cores: int = 2, memory: str = "2g", worker_opts: str = ""
) -> Iterator[Cluster]:
    """Run a master and ``workers`` workers on loopback; stop them even on failure.
    ``worker_opts``: more ``-D`` settings of the workers (resources such as GPUs).

    Yields once every worker has registered with the master. On exit each daemon (and the
    executors its workers launched) gets SIGTERM, then SIGKILL if it is still there after 15 s.
    """
    port, ui = free_port(), free_port()
    env = dict(os.environ)
    env.update({
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_PID_DIR": str(root / "pids"),
        "SPARK_LOG_DIR": str(root / "logs"),
        "SPARK_WORKER_DIR": str(root / "work"),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_MASTER_HOST": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_WORKER_OPTS": f"-Dspark.worker.cleanup.enabled=false {worker_opts}".strip(),
    })
    for sub in ("pids", "logs", "work"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    cluster = Cluster(f"spark://127.0.0.1:{port}", env, root, ui)
    try:
        _daemons(env, MASTER, [(1, ["--host", "127.0.0.1", "--port", str(port),
                                    "--webui-port", str(ui)])])
        _wait_for(port)
        _daemons(env, WORKER, [
            (i, ["--host", "127.0.0.1", "--cores", str(cores), "--memory", memory,
                 "--webui-port", str(free_port()), cluster.url])
            for i in range(1, workers + 1)
        ])
        _wait_for_workers(cluster, workers)
        yield cluster
    finally:
        workers_ = [(pid, WORKER) for pid in cluster.worker_pids()]
        executors = [(pid, EXECUTOR) for pid in _children_of([p for p, _ in workers_])]
        masters = [(int(p.read_text().strip()), MASTER)
                   for p in (root / "pids").glob(f"*{MASTER}*.pid")]
        for pid, main_class in workers_ + executors + masters:
            if main_class in _cmdline(pid):  # never signal a pid reused by someone else
                _stop(pid)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _children_of(parents: list[int]) -> list[int]:
    """Processes whose parent is one of ``parents`` (a worker's executor JVMs)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) in parents:
                found.append(int(stat.parent.name))
    return found
