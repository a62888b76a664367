"""Datasets as they come (issue 22): many small files, one large file, planning at scale.

- ``read``: ``read_tfrecords(spark, d).count()`` of the same 100k MNIST records in 10 files
  and in 4,000 files of 25 records, alternating in one session;
- ``infer``: ``sparktf infer`` (whole process, CPU account) on the same two folders,
  alternating;
- ``split``: one ~1 GB file read at ``maxPartitionBytes`` 64 MiB (tasks counted) against the
  same file read whole (``splitFiles=false``): time, tasks, and a hash of every row;
- ``planning``: listing and packing 100,000 files on the driver; listing 10,000 objects of
  the S3 test server (moto on 127.0.0.1).

Usage: python bench/layout.py [--rounds N] [--work DIR] [--only read,infer,split,planning]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from common import ROOT, make_tfrecords, spark_session, warm_cache
from cpu import run_accounted

sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
HINT = "image array<float>, label array<float>"
RECORDS = 100_000


def _datasets(work: Path, records: int) -> dict[str, Path]:
    return {"10 files": make_tfrecords(work / f"layout-10-{records}", records, 10),
            "4,000 files": make_tfrecords(work / f"layout-4000-{records}", records, 4000)}


def read_count(work: Path, rounds: int, records: int = RECORDS) -> list[dict]:
    import sparktf

    data = _datasets(work, records)
    spark = spark_session()
    spark.conf.unset("spark.sql.files.maxPartitionBytes")  # Spark's default: 128 MiB
    times: dict[str, list[float]] = {name: [] for name in data}
    tasks = {}
    for path in data.values():  # warm-up: session, workers, page cache
        sparktf.read_tfrecords(spark, str(path), schema_hint=HINT).count()
    for _ in range(rounds):
        for name, path in data.items():
            warm_cache([path])
            start = time.perf_counter()
            df = sparktf.read_tfrecords(spark, str(path), schema_hint=HINT)
            assert df.count() == records
            times[name].append(time.perf_counter() - start)
            tasks[name] = df.rdd.getNumPartitions()
    spark.stop()
    return [{"bench": "layout read", "who": f"read_tfrecords().count(), {name} "
             f"({tasks[name]} tasks)", "records": records,
             "seconds": statistics.median(t), "runs": t} for name, t in times.items()]


def infer(work: Path, rounds: int, records: int = RECORDS) -> list[dict]:
    from model_bench import model

    export = model(work)
    data = _datasets(work, records)
    times: dict[str, list[float]] = {name: [] for name in data}
    cpus: dict[str, list[dict[str, float]]] = {name: [] for name in data}
    for _ in range(rounds):
        for name, path in data.items():
            warm_cache([path])
            out = work / "layout-infer-out"
            cmd = [str(BIN / "sparktf"), "infer", "--input", str(path), "--export_dir",
                   str(export), "--input_mapping", '{"image": "x"}', "--output_mapping",
                   '{"prediction": "prediction"}', "--output", str(out), "--mode",
                   "overwrite"]
            account, seconds, _, stderr = run_accounted(cmd)
            assert f"sparktf infer: {records} rows" in stderr, stderr[-2000:]
            times[name].append(seconds)
            cpus[name].append(account.seconds)
    return [{"bench": "layout infer", "who": f"sparktf infer (whole process), {name}",
             "records": records, "seconds": statistics.median(times[name]),
             "runs": times[name], "cpu": cpus[name]} for name in data]


def split(work: Path, rounds: int, records: int = 330_000) -> list[dict]:
    """One ~1 GB file (330k MNIST records), split at 64 MiB against read whole."""
    from pyspark.sql import functions as F

    import sparktf

    path = make_tfrecords(work / f"layout-one-{records}", records, 1)
    spark = spark_session()
    ways = {"split at 64 MiB": {"max_partition_bytes": "64m"},
            "read whole (splitFiles=false)": {"split_files": False}}
    times: dict[str, list[float]] = {name: [] for name in ways}
    found = {}
    for _ in range(rounds):
        for name, options in ways.items():
            warm_cache([path])
            start = time.perf_counter()
            df = sparktf.read_tfrecords(spark, str(path), schema_hint=HINT, **options)
            digest = df.select(F.xxhash64("image", "label").alias("h")).agg(
                F.count("h").alias("n"), F.sum(F.col("h").cast("decimal(38,0)")).alias("s")
            ).first()
            times[name].append(time.perf_counter() - start)
            found[name] = (df.rdd.getNumPartitions(), digest.n, digest.s)
    spark.stop()
    same = len({v[1:] for v in found.values()}) == 1
    return [{"bench": "layout split", "who": f"one {records:,}-record file, {name} "
             f"({found[name][0]} tasks; rows identical: {same})", "records": records,
             "seconds": statistics.median(t), "runs": t} for name, t in times.items()]


def planning(work: Path, files: int = 100_000) -> dict[str, object]:
    """Seconds to list and pack ``files`` local files (tiny ones), as the driver does."""
    from sparktf.listing import list_inputs
    from sparktf.planning import PackSettings, plan_tasks
    from sparktf.tfrecord.framing import frame

    folder = work / f"layout-planning-{files}"
    marker = folder / "_DONE"
    if not marker.exists():
        folder.mkdir(parents=True, exist_ok=True)
        blob = frame(b"x" * 100)
        for i in range(files):
            sub = folder / f"day={i % 100}"
            sub.mkdir(exist_ok=True)
            (sub / f"part-{i:06d}.tfrecord").write_bytes(blob)
        marker.write_text("ok")
    start = time.perf_counter()
    listing = list_inputs(str(folder))
    listed = time.perf_counter() - start
    tasks = plan_tasks(listing.files, PackSettings(open_cost_in_bytes=64 << 10,
                                                   min_partitions=2))
    total = time.perf_counter() - start
    return {"files": len(listing.files), "partitions": len(listing.spec.values),
            "tasks": len(tasks), "listing_s": round(listed, 2), "listing_and_packing_s":
            round(total, 2)}


def s3_listing(work: Path, objects: int = 10_000) -> dict[str, object]:
    """Seconds to list ``objects`` objects of the S3 test server (moto, loopback)."""
    import os

    from sparktf import fs
    from sparktf.listing import list_inputs
    from tests import s3server

    endpoint = s3server.configure()
    server = s3server.start(endpoint, work / "moto-layout.log")
    try:
        bucket = s3server.make_bucket("sparktf-layout")
        import pyarrow.fs as pafs

        store = pafs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"],
                                  scheme="http")
        start = time.perf_counter()
        for i in range(objects):
            with store.open_output_stream(f"{bucket}/t/day={i % 10}/part-{i:05d}") as out:
                out.write(b"")
        uploaded = time.perf_counter() - start
        start = time.perf_counter()
        listing = list_inputs(f"s3://{bucket}/t")
        listed = time.perf_counter() - start
        assert len(listing.files) == objects and fs.is_remote(listing.files[0].path)
    finally:
        s3server.stop(server)
    return {"objects": objects, "listing_s": round(listed, 2), "upload_s": round(uploaded, 1)}


def run(work: Path, rounds: int, only: set[str] | None = None) -> tuple[list[dict], dict]:
    only = only or {"read", "infer", "split", "planning"}
    rows: list[dict] = []
    summary: dict = {}
    for name, group in (("read", read_count), ("infer", infer), ("split", split)):
        if name in only:
            rows += group(work, rounds)
            print(json.dumps(rows[-2:]), flush=True)
    if "planning" in only:
        summary["planning_100k_files"] = planning(work)
        summary["s3_listing_10k_objects"] = s3_listing(work)
    return rows, summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / "output")
    parser.add_argument("--only", default="read,infer,split,planning")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    found_rows, found = run(args.work, args.rounds, set(args.only.split(",")))
    from run import cpu_table, table

    print(table(found_rows))
    print(cpu_table(found_rows))
    print(json.dumps(found, indent=1))
