"""Small and interactive work (issue 13): what a user meets in the first hour.

On the walk-through's size (2,000 MNIST records in 10 files), in alternating rounds, each
a whole process:

- ``sparktf infer`` (fused, JSON out) against ``bench/spark_floor.py`` (Spark's own start-up
  floor: a session and one job whose workers import TensorFlow) and ``bench/plain_tf.py``;
- a script whose first action is ``df.limit(5).toPandas()`` against one whose first action
  is ``df.toPandas()`` of all 2,000 rows (``read_tfrecords``, ``configure_session``; the
  action alone is timed, Spark's start-up is not).

Usage: python bench/small.py [--rounds 3] [--work bench/output]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import ROOT, make_tfrecords, warm_cache  # noqa: E402
from model_bench import _infer_cmd, model  # noqa: E402

ACTION = """
import sys, time
from pyspark.sql import SparkSession
import sparktf
spark = sparktf.configure_session(SparkSession.builder.master("local[*]")
                                  .config("spark.driver.host", "127.0.0.1")).getOrCreate()
spark.sparkContext.setLogLevel("ERROR")
df = sparktf.read_tfrecords(spark, sys.argv[1])
start = time.perf_counter()
rows = len(df.limit(5).toPandas() if sys.argv[2] == "limit" else df.toPandas())
print(rows, time.perf_counter() - start)
"""


def _whole(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def _action(data: Path, which: str) -> float:
    done = subprocess.run([sys.executable, "-c", ACTION, str(data), which], check=True,
                          capture_output=True, text=True)
    rows, seconds = done.stdout.split()[-2:]
    assert int(rows) == (5 if which == "limit" else 2000), done.stdout
    return float(seconds)


def run(work: Path, rounds: int) -> list[dict]:
    export = model(work)
    data = make_tfrecords(work / "small-2000", 2000, 10)
    files = sorted(str(p) for p in data.glob("*.tfrecord"))
    out = work / "small-out"
    times: dict[str, list[float]] = {}
    for _ in range(rounds):
        warm_cache(files)
        steps = {
            "floor": lambda: _whole([sys.executable, str(ROOT / "bench" / "spark_floor.py")]),
            "infer": lambda: _whole(_infer_cmd([str(data)], export, out)),
            "plain": lambda: _whole([sys.executable, str(ROOT / "bench" / "plain_tf.py"),
                                     str(export), *files]),
            "limit": lambda: _action(data, "limit"),
            "all": lambda: _action(data, "all"),
        }
        for name, step in steps.items():
            times.setdefault(name, []).append(step())
    med = {k: statistics.median(v) for k, v in times.items()}
    labels = {
        "floor": ("small", "Spark floor: session + 1 job importing TF (whole process)", 1),
        "infer": ("small", "sparktf infer, 2,000 records (whole process)", 2000),
        "plain": ("small", "plain TF script, 2,000 records (whole process)", 2000),
        "all": ("first action", "df.toPandas(), 2,000 rows (action only)", 2000),
        "limit": ("first action", "df.limit(5).toPandas() (action only)", 5),
    }
    rows = []
    for key in ("floor", "infer", "plain", "all", "limit"):
        bench, who, records = labels[key]
        rows.append({"bench": bench, "who": who, "records": records, "seconds": med[key],
                     "runs": times[key]})
    print(f"infer - floor: {med['infer'] - med['floor']:+.1f} s (goal: at most +3 s); "
          f"rounds: " + ", ".join(f"{i - f:+.1f}" for i, f in zip(times["infer"],
                                                                  times["floor"])))
    print("limit(5) / all: " + ", ".join(f"{a:.1f}/{b:.1f} s" for a, b in zip(times["limit"],
                                                                          times["all"])))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / "output")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    for row in run(args.work, args.rounds):
        runs = ", ".join(f"{t:.1f}" for t in row["runs"])
        print(f"| {row['bench']} | {row['who']} | {row['seconds']:.1f} s | {runs} |")


if __name__ == "__main__":
    main()
