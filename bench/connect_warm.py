"""A warm Spark Connect server: whole-process `sparktf infer --remote` (300 records) and a
fresh client's `TFModel.transform(...).collect()`, with the server's daemons preloading
TensorFlow per session (`SPARKTF_PRELOAD=daemon`, the default) or forking from one shared
zygote per host (`shared`); then the server's memory over many client sessions.

    .venv/bin/python bench/connect_warm.py [--runs 5] [--sessions 50]

Both servers run side by side (one at a time, alternating runs); each is started as the
README says, warmed by one run, and then timed. Memory: the proportional set size (PSS,
shared pages divided among their sharers) of the server JVM and every process under it,
summed, after each batch of client sessions.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import make_tfrecords  # noqa: E402
from tests.connect_server import ConnectServer, descendants  # noqa: E402

BIN = Path(sys.executable).parent
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


def pss_mib(pid: int) -> float:
    """The server and everything under it, and the zygote (a new session's child of init)
    and its workers."""
    total = 0
    procs = {pid, *descendants(pid)}
    for zygote in zygotes():
        procs |= {zygote, *descendants(zygote)}
    for p in procs:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


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
        for mode, server in servers.items():
            memory = [pss_mib(server.pid)]
            for batch in range(args.sessions // 10):
                for _ in range(10):
                    timed([sys.executable, "-c", CLIENT, server.url, str(data), str(model),
                           HINT], env)
                memory.append(pss_mib(server.pid))
                print(f"{mode}: after {10 * (batch + 1)} more sessions: server PSS "
                      f"{memory[-1]:,.0f} MiB", flush=True)
            print(f"{mode}: server PSS {' -> '.join(f'{m:,.0f}' for m in memory)} MiB")
    finally:
        for server in servers.values():
            server.stop()


if __name__ == "__main__":
    main()
