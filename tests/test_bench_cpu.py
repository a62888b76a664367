"""The benchmarks' CPU account (bench/cpu.py) counts the CPU of a process tree by kind."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from cpu import CpuAccount, kind_of, run_accounted  # noqa: E402

BURN = "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end: pass\n"


def test_a_command_and_its_children_are_accounted() -> None:
    # a parent that burns 0.3 s and starts a child that burns 0.6 s
    child = BURN.format(s=0.6)
    parent = (f"import subprocess, sys\n{BURN.format(s=0.3)}"
              f"subprocess.run([sys.executable, '-c', {child!r}], check=True)\n")
    account, wall, out, err = run_accounted([sys.executable, "-c", parent])
    assert account.processes == 2
    assert 0.8 <= account.seconds["Python driver"] <= 1.3, account.seconds
    assert account.seconds["JVM"] == account.seconds["Python workers"] == 0.0
    assert wall >= 0.9


def test_what_ran_before_the_block_does_not_count() -> None:
    exec(BURN.format(s=0.3))  # noqa: S102 - this process's own CPU, before the account
    with CpuAccount() as account:
        pass
    assert account.total < 0.2, account.seconds


@pytest.mark.parametrize(
    ("cmdline", "kind"),
    [
        (b"/usr/lib/jvm/java-17/bin/java\0-cp\0x\0org.apache.spark.deploy.SparkSubmit\0", "JVM"),
        (b"/v/bin/python\0-m\0sparktf.spark.daemon\0pyspark.worker\0", "Python workers"),
        (b"/v/bin/python\0-m\0pyspark.daemon\0", "Python workers"),
        (b"/v/bin/python\0/v/bin/sparktf\0infer\0", "Python driver"),
        (b"/usr/bin/env\0bash\0spark-submit\0", "shell"),
    ],
)
def test_processes_are_told_apart_by_command_line(monkeypatch: pytest.MonkeyPatch,
                                                  cmdline: bytes, kind: str) -> None:
    monkeypatch.setattr(Path, "read_bytes", lambda self: cmdline)
    assert kind_of(1) == kind
