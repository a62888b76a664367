"""Small and interactive work (issue 13): what a user meets in the first hour.

On the walk-through's size (2,000 MNIST records in 10 files), in alternating rounds, each
a whole process:

- ``sparktf infer`` (fused, JSON out) against ``bench/spark_floor.py`` (Spark's own start-up
  floor: a session and one job whose workers import TensorFlow) and ``bench/plain_tf.py``;
- scripts whose first action is ``df.limit(5).toPandas()``, ``df.take(5)``, ``df.show()``
  or ``df.toPandas()`` of all 2,000 rows (``read_tfrecords``), on a session made with
  ``configure_session`` and on a plain one (``SparkSession.builder`` alone: PySpark's own
  daemon, no TensorFlow preloaded in the workers); the action is timed alone and the whole
  process too (``--plain_only``: the plain session's four, against Spark's floor).

Usage: python bench/small.py [--rounds 3] [--work bench/output] [--plain_only [--records N]]
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
import contextlib, io, sys, time
from pyspark.sql import SparkSession
import sparktf
builder = SparkSession.builder.master("local[*]").config("spark.driver.host", "127.0.0.1")
if sys.argv[3] == "configured":
    builder = sparktf.configure_session(builder)
spark = builder.getOrCreate()
spark.sparkContext.setLogLevel("ERROR")
df = sparktf.read_tfrecords(spark, sys.argv[1])
start = time.perf_counter()
if sys.argv[2] == "show":
    with contextlib.redirect_stdout(io.StringIO()) as shown:
        df.show()
    rows = shown.getvalue().count("\\n") - 5  # a table of 20 rows, 4 rules, a footer
elif sys.argv[2] == "take":
    rows = len(df.take(5))
else:
    rows = len(df.limit(5).toPandas() if sys.argv[2] == "limit" else df.toPandas())
print(rows, time.perf_counter() - start)
"""
#: rows each first action returns, of the 2,000
ROWS = {"limit": 5, "take": 5, "show": 20, "all": 2000}


def _whole(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def _action(data: Path, which: str, session: str = "configured",
            records: int = 2000) -> tuple[float, float]:
    """The action's own seconds and the whole process's."""
    begin = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", ACTION, str(data), which, session],
                          check=True, capture_output=True, text=True)
    whole = time.perf_counter() - begin
    rows, seconds = done.stdout.split()[-2:]
    assert int(rows) == (records if which == "all" else ROWS[which]), done.stdout
    return float(seconds), whole


def plain_first_actions(work: Path, rounds: int,
                        records: int = 2000) -> dict[str, list[tuple[float, float]]]:
    """Each first action on a plain session, and Spark's floor, in alternating rounds."""
    data = make_tfrecords(work / f"small-{records}", records, 10)
    files = sorted(str(p) for p in data.glob("*.tfrecord"))
    times: dict[str, list[tuple[float, float]]] = {}
    for _ in range(rounds):
        warm_cache(files)
        floor = _whole([sys.executable, str(ROOT / "bench" / "spark_floor.py")])
        times.setdefault("floor", []).append((floor, floor))
        for which in ROWS:
            times.setdefault(which, []).append(_action(data, which, "plain", records))
    return times


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
            "limit": lambda: _action(data, "limit")[0],
            "all": lambda: _action(data, "all")[0],
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
    parser.add_argument("--plain_only", action="store_true")
    parser.add_argument("--records", type=int, default=2000, help="with --plain_only")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.plain_only:
        for which, runs in plain_first_actions(args.work, args.rounds, args.records).items():
            action = ", ".join(f"{a:.1f}" for a, _ in runs)
            whole = ", ".join(f"{w:.1f}" for _, w in runs)
            print(f"| plain session | {which} | {action} | {whole} |")
        return
    for row in run(args.work, args.rounds):
        runs = ", ".join(f"{t:.1f}" for t in row["runs"])
        print(f"| {row['bench']} | {row['who']} | {row['seconds']:.1f} s | {runs} |")


if __name__ == "__main__":
    main()
