"""CPU accounting for the benchmarks: CPU seconds of every process of a job, from ``/proc``.

A poller thread reads ``/proc/<pid>/stat`` (user + system time) of a process tree every
0.1 s: the benchmark's own process or a command it starts, and every descendant (the driver
JVM, PySpark's worker daemon and each forked Python worker). Processes that start during the
run count from zero, processes that were there before count from their value at the start;
a process that ends between two polls loses at most its last 0.1 s. Each process is put in
one of a few kinds by its command line.

Usage in a benchmark::

    with CpuAccount() as cpu:          # this process and its descendants
        job()
    cpu.seconds                         # {"JVM": 3.1, "Python workers": 9.8, ...}

    account, wall, stdout, stderr = run_accounted(["sparktf", "infer", ...])
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
KINDS = ("JVM", "Python driver", "Python workers", "other")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system seconds) of ``pid``; None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after the command name, which may hold spaces
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def kind_of(pid: int) -> str:
    """The kind of process ``pid`` is, from its command line."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return "other"
    head = cmd.split(b" ", 1)[0]
    if head.endswith((b"/env", b"bash", b"/sh")) or head in (b"env", b"sh"):
        return "shell"  # spark-submit's scripts, which exec into the JVM: asked again later
    if head.endswith(b"java"):
        return "JVM"
    if b"daemon" in cmd and (b"pyspark" in cmd or b"sparktf" in cmd) or b"pyspark.worker" in cmd:
        return "Python workers"
    if b"python" in head or b"sparktf" in head:
        return "Python driver"
    return "other"


def _all_pids() -> dict[int, tuple[int, float]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            out[int(entry)] = stat
    return out


class CpuAccount:
    """CPU seconds by kind of process for the tree under ``root`` (default: this process),
    while the ``with`` block runs (see the module docstring)."""

    def __init__(self, root: int | None = None, interval: float = 0.1) -> None:
        self.root = root or os.getpid()
        self.interval = interval
        self.base: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.kinds: dict[int, str] = {}
        self.seconds: dict[str, float] = {}
        self.processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _tree(self) -> dict[int, float]:
        procs = _all_pids()
        members = {self.root} | set(self.last)
        changed = True
        while changed:  # descendants of members (a member's children may start late)
            changed = False
            for pid, (ppid, _) in procs.items():
                if ppid in members and pid not in members:
                    members.add(pid)
                    changed = True
        return {pid: procs[pid][1] for pid in members if pid in procs}

    def _sample(self) -> None:
        for pid, cpu in self._tree().items():
            if self.kinds.get(pid, "shell") in ("shell", "other"):  # mid-exec: ask again
                self.kinds[pid] = kind_of(pid)
                self.base.setdefault(pid, 0.0)
            self.last[pid] = cpu

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> CpuAccount:
        for pid, cpu in self._tree().items():  # what was spent before counts not
            self.base[pid] = cpu
            self.last[pid] = cpu
            self.kinds[pid] = kind_of(pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.seconds = dict.fromkeys(KINDS, 0.0)
        for pid, cpu in self.last.items():
            kind = "other" if self.kinds[pid] == "shell" else self.kinds[pid]
            self.seconds[kind] += max(0.0, cpu - self.base[pid])
        self.processes = len(self.last)

    @property
    def total(self) -> float:
        return sum(self.seconds.get(k, 0.0) for k in KINDS)


def run_accounted(cmd: list[str], env: dict[str, str] | None = None
                  ) -> tuple[CpuAccount, float, str, str]:
    """Run ``cmd`` to its end; its CPU account, wall seconds, standard output and error."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    account = CpuAccount(proc.pid)
    with account:
        out, err = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd, out, err)
    return account, wall, out, err
