"""A warm Spark Connect server: whole-process `sparktf infer --remote` (300 records) and a
fresh client's `TFModel.transform(...).collect()`, with the server's daemons preloading
TensorFlow per session (`SPARKTF_PRELOAD=daemon`, the default) or forking from one shared
zygote per host (`shared`); then the server's memory over many client sessions.

    .venv/bin/python bench/connect_warm.py [--runs 5] [--sessions 50] [--modes daemon,shared]
                                           [--memory_modes shared]

Both servers run side by side (one at a time, alternating runs); each is started as the
README says, warmed by one run, and then timed. Memory: the proportional set size (PSS,
shared pages divided among their sharers) of the server JVM and every process under it,
summed, after each batch of client sessions and once more after the last has been idle
for a while, by kind of process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import make_tfrecords  # noqa: E402
from tests.connect_server import ConnectServer, descendants  # noqa: E402

BIN = Path(sys.executable).parent
IDLE = 75  # s: past Spark's idle-worker timeout (60 s, checked every 10 s)
HINT = "struct<image:array<float>,label:array<float>>"
CLIENT = """
import sys, time
from pyspark.sql import SparkSession
import sparktf
start = time.perf_counter()
spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
df = sparktf.read_tfrecords(spark, sys.argv[2], schema_hint=sys.argv[4])
model = sparktf.TFModel(exportDir=sys.argv[3], inputMapping={"image": "x"},
                        outputMapping={"prediction": "prediction"})
rows = model.transform(df).collect()
assert len(rows) == 300, len(rows)
spark.stop()
"""


def zygotes() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"sparktf.spark.zygote" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def pss_mib(pid: int) -> dict[str, float]:
    """PSS in MiB of the server JVM, the session daemons under it, the other Python
    processes under it (planning daemons and workers, or `daemon` mode's task workers),
    and the zygote (started by the first session's daemon) with its workers."""
    forked = {p for zygote in zygotes() for p in descendants(zygote)}
    parts: dict[str, Any] = {"jvm": [pid], "session daemons": [], "python": [],
                             "zygote+workers": forked}
    for p in set(descendants(pid)[1:]) - forked:  # a zygote is a child of the daemon that
        try:
            line = Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            continue
        relay = line.startswith(b"sparktf-daemon-relay") or b"sparktf.spark.daemon" in line
        parts["session daemons" if relay else "python"].append(p)  # started it
    return {name: sum(_pss_kib(p) for p in set(pids)) / 1024 for name, pids in parts.items()}


def _pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def shown(memory: dict[str, float]) -> str:
    parts = ", ".join(f"{name} {value:,.0f}" for name, value in memory.items())
    return f"{sum(memory.values()):,.0f} MiB ({parts})"


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--modes", default="daemon,shared")
    parser.add_argument("--memory_modes", default="shared",  # daemon: ~220 MiB a session
                        help="the servers whose memory is followed over --sessions")
    args = parser.parse_args()
    from tests.models import build_mnist

    work = Path(tempfile.mkdtemp(prefix="sparktf-connect-bench-"))
    data = make_tfrecords(work / "tfr", 300, 2)
    model = build_mnist(work / "mnist_export")
    servers = {}
    for mode in args.modes.split(","):
        os.environ["SPARKTF_PRELOAD"] = mode  # the server's environment, as the README says
        servers[mode] = ConnectServer(work / f"server-{mode}").start()
    env = {k: v for k, v in os.environ.items() if k != "SPARKTF_PRELOAD"}
    try:
        results: dict[str, dict[str, list[float]]] = {m: {"infer": [], "transform": []}
                                                      for m in servers}
        for run in range(args.runs + 1):  # the first run of each warms its server
            for mode, server in servers.items():
                out = work / f"out-{mode}-{run}"
                infer = timed([str(BIN / "sparktf"), "infer", "--remote", server.url,
                               "--export_dir", str(model), "--input", str(data),
                               "--schema_hint", HINT, "--input_mapping", '{"image": "x"}',
                               "--output_mapping", '{"prediction": "prediction"}',
                               "--output", str(out)], env)
                transform = timed([sys.executable, "-c", CLIENT, server.url, str(data),
                                   str(model), HINT], env)
                if run:
                    results[mode]["infer"].append(infer)
                    results[mode]["transform"].append(transform)
                print(f"run {run} {mode}: infer --remote {infer:.1f} s, transform+collect "
                      f"{transform:.1f} s", flush=True)
        for mode, found in results.items():
            print(f"{mode}: infer --remote {sorted(found['infer'])} s; transform "
                  f"{sorted(found['transform'])} s")
        for mode in filter(None, args.memory_modes.split(",")):
            server = servers[mode]
            memory = [pss_mib(server.pid)]
            for batch in range(args.sessions // 10):
                for _ in range(10):
                    timed([sys.executable, "-c", CLIENT, server.url, str(data), str(model),
                           HINT], env)
                memory.append(pss_mib(server.pid))
                print(f"{mode}: after {10 * (batch + 1)} more sessions: server PSS "
                      f"{shown(memory[-1])}", flush=True)
            time.sleep(IDLE)  # Spark ends a session's pooled workers after a minute idle
            print(f"{mode}: {IDLE} s later: server PSS {shown(pss_mib(server.pid))}")
            totals = (f"{sum(m.values()):,.0f}" for m in memory)
            print(f"{mode}: server PSS {' -> '.join(totals)} MiB")
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()
