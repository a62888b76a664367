"""A throw-away Spark Standalone cluster on 127.0.0.1 for tests.

Started with pyspark's own ``sbin/spark-daemon.sh`` (pip's pyspark has no start-master.sh),
with private pid, log and work directories, and always stopped afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyspark

SPARK_HOME = Path(pyspark.__file__).parent
MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    url: str
    env: dict[str, str]
    root: Path

    def worker_pids(self) -> list[int]:
        pids = []
        for pid_file in (self.root / "pids").glob(f"*{WORKER}*.pid"):
            pids.append(int(pid_file.read_text().strip()))
        return pids


def _daemon(env: dict[str, str], action: str, cls: str, instance: int, *args: str) -> None:
    script = str(SPARK_HOME / "sbin" / "spark-daemon.sh")
    subprocess.run(["bash", script, action, cls, str(instance), *args], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


def _wait_for(port: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@contextmanager
def standalone(root: Path, *, workers: int = 1, cores: int = 2, memory: str = "2g") -> Iterator[Cluster]:
    """Run a master and ``workers`` workers on loopback; stop them even on failure."""
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
        "SPARK_WORKER_OPTS": "-Dspark.worker.cleanup.enabled=false",
    })
    for sub in ("pids", "logs", "work"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    url = f"spark://127.0.0.1:{port}"
    started: list[tuple[str, int]] = []
    try:
        _daemon(env, "start", MASTER, 1, "--host", "127.0.0.1", "--port", str(port),
                "--webui-port", str(ui))
        started.append((MASTER, 1))
        _wait_for(port)
        for i in range(1, workers + 1):
            _daemon(env, "start", WORKER, i, "--host", "127.0.0.1", "--cores", str(cores),
                    "--memory", memory, "--webui-port", str(free_port()), url)
            started.append((WORKER, i))
        time.sleep(3)  # let the workers register with the master
        yield Cluster(url, env, root)
    finally:
        for cls, instance in reversed(started):
            try:
                _daemon(env, "stop", cls, instance)
            except (subprocess.SubprocessError, OSError):
                pass
