"""Run sparktf as users do, in whole fresh processes, and check what they print.

``run_sparktf`` starts the ``sparktf`` console script of this environment (``entry``, with its
quick exit) with an environment like a user's shell: no ``TF_CPP_MIN_LOG_LEVEL`` (sparktf keeps
TensorFlow's C++ lines out itself), no ``PYSPARK_PYTHON``, the chosen
``TF_ENABLE_ONEDNN_OPTS`` (``1``: TensorFlow's start-up lines as on AVX-512/AMX hosts, on any
x86 host). :func:`noise` lists every line a quiet run must not print.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

BIN = Path(sys.executable).parent
SPARKTF = str(BIN / "sparktf")
_NOISE = re.compile(
    r"^[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\]"  # TensorFlow's C++ log lines
    r"|absl::InitializeLog"  # absl's preamble to them
    r"|^\s+at [\w.$<>]+\("  # Java stack frames
    r"|Traceback \(most recent call last\)|Py4J|py4j"
    r"|^\S+ \S+ (WARN|ERROR|INFO) "  # log4j lines
    r"|Exception in thread|SparkClassNotFoundException|Skipping doctests"
)


def user_env(onednn: str, **extra: str) -> dict[str, str]:
    """The environment of a user's shell with this virtual environment active."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON",
                        "SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE")}
    env.update(SPARK_LOCAL_IP="127.0.0.1", TF_ENABLE_ONEDNN_OPTS=onednn,
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **extra)
    return env


_SPARK_WARNING = re.compile(r"^\S+ \S+ WARN ")


def noise(stderr: str, *, spark_warnings: bool = False) -> list[str]:
    """The lines of ``stderr`` that a quiet run must not print; ``spark_warnings``: a script
    that makes its own session keeps Spark's default logging, whose WARN lines are the
    user's to configure (log4j), not sparktf's."""
    return [line for line in stderr.splitlines() if _NOISE.search(line)
            and not (spark_warnings and _SPARK_WARNING.match(line))]


def run_sparktf(args: list[str], *, onednn: str = "1", cwd: Path | None = None,
                timeout: int = 300, **extra: str) -> subprocess.CompletedProcess[str]:
    """``sparktf ARGS`` in a fresh process with :func:`user_env`."""
    return subprocess.run([SPARKTF, *args], capture_output=True, text=True, cwd=cwd,
                          env=user_env(onednn, **extra), timeout=timeout)


def run_watched(command: list[str], *, onednn: str, cwd: Path | None = None,
                timeout: int = 300) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``command`` and collect the command lines of every process it starts (the JVM,
    PySpark's daemon and workers), read from ``/proc`` while it runs."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cwd, env=user_env(onednn))
    seen: dict[int, str] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for pid in descendants(proc.pid):
                if pid not in seen:
                    seen[pid] = cmdline(pid)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        done.set()
        watcher.join()
    return subprocess.CompletedProcess(command, proc.returncode, out, err), list(seen.values())


def descendants(root: int) -> list[int]:
    """Every live process below ``root``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read().decode(errors="replace")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def note_line(fault: str, stderr: str) -> None:
    """Append the last line a fault test's run printed to the file ``$SPARKTF_FAULT_LINES``
    names, if set (the figures of README's "Faults and what sparktf does")."""
    target = os.environ.get("SPARKTF_FAULT_LINES")
    lines = stderr.strip().splitlines()
    if target and lines:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(f"{fault}\t{lines[-1]}\n")

