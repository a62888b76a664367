"""Scaling across hosts: the same ``sparktf infer`` with one worker host and with two.

Runs on the cluster of ``tests/multihost.py`` (root only): a Standalone master and two
workers of one core each, each in its own network and mount namespace, the driver in a
fifth. "One host" is ``spark.cores.max=1`` (one executor, on one worker), "two hosts" is
``spark.cores.max=2`` (one executor on each); the rounds alternate, and each round's ratio
compares the two runs of that round. Input: MNIST-shaped records in 10 files under
``--work`` (kept between runs; every host sees that folder), the MNIST-style model of
``bench/model_bench.py``, JSON output into the cluster's shared folder.

    sudo .venv/bin/python bench/multihost.py --records 1000000 --rounds 3
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import make_tfrecords, warm_cache  # noqa: E402
from bench.model_bench import model  # noqa: E402
from tests.multihost import MultiHost, multihost, unavailable  # noqa: E402

BIN = Path(sys.executable).parent


def infer(cluster: MultiHost, hosts: int, data: Path, export: Path, out: Path) -> float:
    """Seconds of one whole ``sparktf infer`` process on ``hosts`` worker hosts."""
    confs = [f"spark.cores.max={hosts}", f"spark.pyspark.python={sys.executable}",
             f"spark.executorEnv.PYTHONPATH={ROOT}", "spark.executor.memory=768m",
             "spark.ui.enabled=false"]
    command = [str(BIN / "sparktf"), "infer", "--master", cluster.url,
               *[a for c in confs for a in ("--conf", c)], "--export_dir", str(export),
               "--input", str(data), "--input_mapping", '{"image": "x"}',
               "--output_mapping", '{"prediction": "prediction"}', "--output", str(out)]
    started = time.perf_counter()
    _, err = cluster.driver(command, cwd=out.parent).communicate()
    seconds = time.perf_counter() - started
    if "sparktf infer:" not in err:
        raise RuntimeError(f"infer on {hosts} host(s) failed:\n{err[-3000:]}")
    shutil.rmtree(out)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / "output")
    args = parser.parse_args()
    reason = unavailable()
    if reason:
        sys.exit(reason)
    data = make_tfrecords(args.work / f"multihost-{args.records}", args.records, 10)
    export = model(args.work)
    times: dict[int, list[float]] = {1: [], 2: []}
    with multihost() as cluster:
        for round_ in range(args.rounds):
            for hosts in (1, 2) if round_ % 2 == 0 else (2, 1):
                warm_cache([data])
                seconds = infer(cluster, hosts, data, export, cluster.shared / "out")
                times[hosts].append(seconds)
                print(f"round {round_ + 1}: {hosts} host(s) {seconds:.1f} s "
                      f"({args.records / seconds:,.0f} records/s)", flush=True)
    ratios = [one / two for one, two in zip(times[1], times[2])]
    for hosts in (1, 2):
        median = statistics.median(times[hosts])
        print(f"{hosts} host(s): median {median:.1f} s, {args.records / median:,.0f} records/s")
    print("speed-up per round (ideal 2.0): " + ", ".join(f"{r:.2f}" for r in ratios))


if __name__ == "__main__":
    main()
