"""``make bench``: every benchmark in one run, printed as one table.

Usage: python bench/run.py [--quick] [--spark-defaults]
                          [--only io,transform,e2e,output,small,memory,tfos,remote,layout]

Figures are records/s; "ratio" compares each row with the first row of its group (the
baseline), measured side by side in the same run on the same data.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import model_bench  # noqa: E402
import small  # noqa: E402
import tfrecord_io  # noqa: E402

GROUPS = ("io", "transform", "e2e", "output", "small", "memory", "tfos", "remote", "layout")


def table(rows: list[dict]) -> str:
    """Markdown table; timed rounds give the median, and the ratio of each round to the
    baseline's run in the same round."""
    baselines: dict[str, dict] = {}
    lines = ["| bench | who | records | seconds | records/s | ratio | ratio per round "
             "| peak worker RSS |", "|---|---|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        rate = r["records"] / r["seconds"]
        base = baselines.setdefault(r["bench"], r)
        ratio = rate / (base["records"] / base["seconds"])
        per_round = ""
        if r is not base and len(r.get("runs", ())) > 1 and len(base.get("runs", ())) == len(
                r["runs"]):
            per_round = ", ".join(f"{b / t * r['records'] / base['records']:.2f}"
                                  for b, t in zip(base["runs"], r["runs"]))
        rss = f"{r['peak_rss_mib']:.0f} MiB" if r.get("peak_rss_mib") else ""
        lines.append(f"| {r['bench']} | {r['who']} | {r['records']:,} | {r['seconds']:.1f} | "
                     f"{rate:,.0f} | {ratio:.2f}x | {per_round} | {rss} |")
    return "\n".join(lines)


def cpu_table(rows: list[dict]) -> str:
    """Markdown table of the CPU account (``bench/cpu.py``): median CPU seconds of every
    process of each run, in µs per record, by kind of process; the ratio compares CPU per
    record with the group's first accounted row of as many records."""
    from cpu import KINDS

    baselines: dict[tuple[str, int], float] = {}
    lines = ["| bench | who | records | CPU s | µs/record | " + " | ".join(
        f"{k} µs/rec" for k in KINDS[:3]) + " | CPU ratio |", "|---|---|---:" + "|---:" * 6 + "|"]
    for r in rows:
        if not r.get("cpu"):
            continue
        per_kind = {k: statistics.median(run.get(k, 0.0) for run in r["cpu"]) for k in KINDS}
        total = statistics.median(sum(run.get(k, 0.0) for k in KINDS) for run in r["cpu"])
        us = total * 1e6 / r["records"]
        base = baselines.setdefault((r["bench"], r["records"]), us)
        kinds = " | ".join(f"{per_kind[k] * 1e6 / r['records']:.2f}" for k in KINDS[:3])
        lines.append(f"| {r['bench']} | {r['who']} | {r['records']:,} | {total:.1f} | {us:.2f} "
                     f"| {kinds} | {us / base:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10x smaller, 1 round (a smoke run)")
    parser.add_argument("--only", default=",".join(GROUPS), help="comma-separated groups")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--spark-defaults", action="store_true",
                        help="sessions without sparktf.configure_session's JVM options")
    parser.add_argument("--pin", metavar="CPUS",
                        help="run the end-to-end group's processes on these CPUs only "
                        "(taskset list, e.g. 0: this VM's slow mode, about one core)")
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / "output")
    args = parser.parse_args()
    scale, rounds = (10, 1) if args.quick else (1, args.rounds)
    only = set(args.only.split(","))
    if args.pin:
        os.environ["SPARKTF_BENCH_PIN"] = args.pin
    if args.spark_defaults:
        os.environ["SPARKTF_BENCH_SPARK_DEFAULTS"] = "1"
    args.work.mkdir(parents=True, exist_ok=True)
    start, rows, summary = time.time(), [], {}
    server = None
    if "remote" in only:  # before any Spark session: its workers inherit the endpoint
        import remote_io

        server = remote_io.start_server(args.work)
    try:
        rows, summary = _groups(args, only, scale, rounds)
    finally:
        if server is not None:
            from tests import s3server

            s3server.stop(server)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
          f"{platform.python_version()}; total {time.time() - start:.0f} s")
    print(table(rows))
    print("CPU account (every process of each run, from /proc):")
    print(cpu_table(rows))
    if summary:
        print("end-to-end:", json.dumps(summary, indent=1))
    (args.work / "results.json").write_text(json.dumps({"rows": rows, "e2e": summary},
                                                       indent=2))


def _groups(args: argparse.Namespace, only: set[str], scale: int,
            rounds: int) -> tuple[list[dict], dict]:
    rows: list[dict] = []
    summary: dict = {}
    if "io" in only:
        rows += tfrecord_io.run(args.work, 1_000_000 // scale, 100_000 // scale, 10, rounds)
        rows += tfrecord_io.memory(args.work, 100_000 // scale)
    if "transform" in only:
        rows += model_bench.transform_vs_udf(args.work, 1_000_000 // scale, rounds)
    if "e2e" in only:
        e2e, summary = model_bench.end_to_end(args.work, 100_000 // scale, rounds)
        rows += e2e + model_bench.udf_on_tfrecords(args.work, 100_000 // scale)
    if "output" in only:
        rows += model_bench.output_formats(args.work, 100_000 // scale, rounds)
    if "small" in only:
        rows += small.run(args.work, rounds)
    if "tfos" in only:
        rows += model_bench.tfos(args.work, 20_000 // scale)
    if "memory" in only:
        rows += model_bench.memory(args.work, 100_000 // scale)
    if "remote" in only:
        import remote_io

        rows += remote_io.run(args.work, 100_000 // scale, rounds)
    if "layout" in only:
        import layout

        found, summary["layout"] = layout.run(args.work, rounds)
        rows += found
    return rows, summary


if __name__ == "__main__":
    main()
