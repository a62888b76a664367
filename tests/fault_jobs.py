"""Spark jobs with injected faults, run in their own process by ``tests/test_faults.py``.

Local mode retries a failed task only under a master ``local[N,F]``, while the suite's shared
session is ``local[2]``, so these jobs get a session of their own. Each job writes what it saw
(its outcome, where the fault hit) to ``WORKDIR/report.json``; the tests read the output files
on disk themselves. Faults in the middle of TFModel inference come from the session's Python
daemon, ``tests/fault_daemon.py``, which wraps the model's batch function in every worker.

Usage::

    python tests/fault_jobs.py local WORKDIR [S3_URL]
    python tests/fault_jobs.py standalone WORKDIR MASTER_URL PID_DIR
"""

from __future__ import annotations

import glob
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
ROWS = 20_000  # ids 0..ROWS-1, in PARTITIONS partitions
PARTITIONS = 4
FAULTY = 2  # the partition whose task raises
KILLED = 1  # the partition whose Python worker is killed
SCHEMA = "id bigint, x array<float>"
WIDTH = 16  # values in x: rows wide enough that the writer receives data before the fault
FAULT_AFTER = 6  # batches passed on before the fault (of ROWS / PARTITIONS / 500 = 10)
BATCH = 500  # rows per Arrow batch, and per model batch (TFModel batchSize)


def rows(spark: Any) -> Any:
    """``ROWS`` rows ``(id, [id / 2] * WIDTH)`` in ``PARTITIONS`` partitions."""
    return spark.range(0, ROWS, numPartitions=PARTITIONS).selectExpr(
        "id", f"array_repeat(cast(id / 2 as float), {WIDTH}) as x")


def rows_to_write(spark: Any, fault: Callable | None = None) -> Any:
    """:func:`rows` passed through ``mapInArrow`` (where the faults go)."""
    return rows(spark).mapInArrow(fault or identity, SCHEMA)


def identity(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield from batches


def fault(
    kinds: dict[int, str], markers: str, tag: str, *, always: bool = False,
    staged_under: str | None = None,
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A ``mapInArrow`` function that, in each partition of ``kinds`` (on its first attempt
    only, unless ``always``), passes ``FAULT_AFTER`` batches on, then raises (``"raise"``) or
    kills its own Python worker with SIGKILL (``"kill"``), leaving a marker file
    ``<tag>-<kind>-<attempt>.json``. With ``staged_under``, it first waits until the writer
    has staged a file for this task attempt, so the fault hits mid-write."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        context = TaskContext.get()
        attempt, partition = context.attemptNumber(), context.partitionId()
        kind = kinds.get(partition) if always or attempt == 0 else None
        for i, batch in enumerate(batches):
            yield batch
            if kind and i == FAULT_AFTER - 1:
                staged = wait_for_staged(staged_under, partition, attempt)
                note = {"kind": kind, "partition": partition, "attempt": attempt,
                        "staged": staged, "pid": os.getpid()}
                Path(markers, f"{tag}-{kind}-{attempt}.json").write_text(json.dumps(note))
                if kind == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise RuntimeError(f"injected fault in partition {partition}, attempt {attempt}")

    return run


def wait_for_staged(out: str | None, partition: int, attempt: int) -> list[str]:
    """The staged files of this task attempt, once one exists (waits up to 10 s)."""
    if out is None:
        return []
    pattern = os.path.join(out, "_temporary", "*", f"{partition:05d}-{attempt}", "*")
    deadline = time.time() + 10
    while time.time() < deadline:
        found = glob.glob(pattern)
        if found:
            return [os.path.relpath(f, out) for f in found]
        time.sleep(0.05)
    return []


def outcome(action: Callable[[], Any]) -> dict[str, Any]:
    """Run ``action``; its result, or the error as the driver sees it (sparktf class first)."""
    from sparktf.spark.errors import find_sparktf_error

    try:
        return {"ok": True, "result": action()}
    except Exception as exc:  # the report says what happened; the tests judge it
        found = find_sparktf_error(exc)
        return {"ok": False, "error": type(found or exc).__name__,
                "message": str(found or exc)[:4000]}


def checksum(df: Any) -> dict[str, int]:
    """Count, sum and sum of squares of ``id`` (exact: bigint arithmetic in Spark)."""
    from pyspark.sql import functions as F

    row = df.agg(F.count("id").alias("n"), F.sum("id").alias("s"),
                 F.sum(F.col("id") * F.col("id")).alias("q")).collect()[0]
    return {"n": row.n, "s": row.s, "q": row.q}


# -- local mode ------------------------------------------------------------------------------


def local_session() -> Any:
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2,4]")
        .appName("sparktf-faults")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(BATCH))
        .config("spark.executorEnv.TF_CPP_MIN_LOG_LEVEL", "2")
        .config("spark.python.daemon.module", "tests.fault_daemon")
        .config("spark.executorEnv.PYTHONPATH", str(ROOT))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("OFF")
    return spark


def run_local(work: Path, s3_url: str | None = None) -> dict[str, Any]:
    import sparktf

    spark = local_session()
    markers = str(work / "markers")
    os.makedirs(markers, exist_ok=True)
    report: dict[str, Any] = {}

    def job(name: str, action: Callable[[], Any]) -> None:
        started = time.time()
        report[name] = outcome(action)
        report[name]["seconds"] = round(time.time() - started, 1)

    def write(name: str, df: Any, target: str, mode: str = "errorifexists") -> None:
        job(name, lambda: sparktf.write_tfrecords(df, str(work / target), mode=mode))

    # (a), (b): in one job, a task fails and another's Python worker is killed, mid-write,
    # each on its first attempt only
    faults = {FAULTY: "raise", KILLED: "kill"}
    staged = str(work / "write-once")
    write("write-once", rows_to_write(spark, fault(faults, markers, "write-once",
                                                   staged_under=staged)), "write-once")

    # (c): the same two faults right after reading TFRecords (a given schema: no inference)
    write("input", rows_to_write(spark), "input")
    sparktf.register(spark)
    # one task per file (as many tasks as the partitions written), whatever the packing
    one_each = {"maxPartitionBytes": "1", "openCostInBytes": "1"}
    df = spark.read.format("tfrecord").options(**one_each).schema(SCHEMA).load(
        str(work / "input"))
    job("read-once", lambda: checksum(df.mapInArrow(fault(faults, markers, "read-once"), SCHEMA)))

    # (d): jobs that fail on every attempt, over an existing output and into a fresh path
    keep = spark.range(0, 10, numPartitions=2).selectExpr("id", "array(cast(id as float)) as x")
    write("keep", keep, "keep")
    report["keep-before"] = snapshot(work / "keep")
    df = rows_to_write(spark, fault({FAULTY: "raise"}, markers, "keep", always=True))
    write("keep-always", df, "keep", mode="overwrite")
    df = rows_to_write(spark, fault({FAULTY: "kill"}, markers, "fresh", always=True))
    write("fresh-always", df, "fresh")

    # (e), (f): the faults of (a), (b) in the middle of TFModel inference, on the fused path
    # (a read_tfrecords scan: score_files) and on the general one (map_batches)
    from sparktf.ml import TFModel
    from tests.models import build_rowsum

    model = TFModel(exportDir=str(build_rowsum(work / "rowsum", width=WIDTH)),
                    inputMapping={"x": "x"}, passthroughColumns=["id"], batchSize=BATCH,
                    outputMapping={"total": "total", "doubled": "doubled"})
    scans = {"fused": sparktf.read_tfrecords(spark, str(work / "input"), schema_hint=SCHEMA,
                                             **one_each),
             "general": rows(spark)}
    for tag, df in scans.items():
        fault_spec = {"tag": tag, "markers": markers, "kinds": {FAULTY: "raise", KILLED: "kill"},
                      "after": FAULT_AFTER, "staged_under": str(work / tag)}
        with inference_faults(spark, fault_spec):
            write(tag, model.transform(df), tag)
    if s3_url:
        report.update(s3_jobs(spark, markers, s3_url))
    time.sleep(1)  # let the Python workers of failed attempts finish, then look
    report["keep-after"] = snapshot(work / "keep")
    report["faults"] = {p.stem: json.loads(p.read_text()) for p in sorted(Path(markers).iterdir())}
    spark.stop()
    return report


def s3_jobs(spark: Any, markers: str, url: str) -> dict[str, Any]:
    """The write faults above on an object store (the manifest commit protocol): a task that
    raises and a worker killed mid-write, on their first attempt, into ``URL/once``; a task
    killed on every attempt into ``URL/fresh``."""
    import sparktf

    report: dict[str, Any] = {"s3-url": url}
    df = rows_to_write(spark, fault({FAULTY: "raise", KILLED: "kill"}, markers, "s3once"))
    report["s3-once"] = outcome(lambda: sparktf.write_tfrecords(df, f"{url}/once"))
    df = rows_to_write(spark, fault({FAULTY: "kill"}, markers, "s3fresh", always=True))
    report["s3-fresh"] = outcome(lambda: sparktf.write_tfrecords(df, f"{url}/fresh"))
    return report


@contextmanager
def inference_faults(spark: Any, spec: dict[str, Any]) -> Iterator[None]:
    """Ask ``tests/fault_daemon.py`` for the faults of ``spec`` in the jobs run inside."""
    from tests.fault_daemon import PROPERTY

    context = spark.sparkContext
    context.setLocalProperty(PROPERTY, json.dumps(spec))
    try:
        yield
    finally:
        context.setLocalProperty(PROPERTY, None)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with the SHA-256 of its bytes."""
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# -- Standalone cluster ----------------------------------------------------------------------


def executor_pid() -> int:
    """The executor JVM above this Python worker (worker -> pyspark daemon -> JVM)."""
    pid = os.getpid()
    for _ in range(4):
        pid = _ppid(pid)
        if _comm(pid) == "java":
            return pid
    raise RuntimeError("no executor JVM above this Python worker")


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def _comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as handle:
        return handle.read().strip()


def wait_to_be_killed(markers: str, out: str) -> Callable[..., Iterator[pa.RecordBatch]]:
    """In partition ``FAULTY``, first attempt: after ``FAULT_AFTER`` batches, once the writer
    has staged a file, name the executor JVM in a marker file and wait (for the driver to
    kill that executor and its Worker)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        context = TaskContext.get()
        attempt, partition = context.attemptNumber(), context.partitionId()
        for i, batch in enumerate(batches):
            yield batch
            if partition == FAULTY and attempt == 0 and i == FAULT_AFTER - 1:
                staged = wait_for_staged(out, partition, attempt)
                jvm = executor_pid()
                note = {"executor": jvm, "staged": staged}
                Path(markers, "executor.json").write_text(json.dumps(note))
                deadline = time.time() + 90
                while time.time() < deadline and running(jvm):
                    time.sleep(0.1)
                raise RuntimeError("the executor was not killed")

    return run


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_worker_of(markers: Path, worker_pids: list[int], killed: dict[str, Any]) -> None:
    """Wait for the marker, then SIGKILL the Worker JVM that launched that executor, and the
    executor JVM itself."""
    deadline = time.time() + 120
    marker = markers / "executor.json"
    while time.time() < deadline and not marker.exists():
        time.sleep(0.1)
    if not marker.exists():
        killed["error"] = "no task reached the fault"
        return
    time.sleep(0.2)
    note = json.loads(marker.read_text())
    executor = note["executor"]
    worker = _ppid(executor)
    is_executor = "CoarseGrainedExecutorBackend" in _cmdline(executor)
    killed.update({"executor": executor, "worker": worker, "known": worker in worker_pids,
                   "is_executor": is_executor, "staged": note["staged"]})
    if worker in worker_pids and is_executor:  # only what this test started
        os.kill(worker, signal.SIGKILL)
        os.kill(executor, signal.SIGKILL)
        killed["at"] = time.time()


def _cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return handle.read().replace(b"\0", b" ").decode()


def run_standalone(work: Path, master: str, pid_dir: str) -> dict[str, Any]:
    from pyspark.sql import SparkSession

    import sparktf

    began = time.time()
    spark = (
        SparkSession.builder.master(master)
        .appName("sparktf-standalone-faults")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.executor.memory", "768m")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "500")
        .config("spark.executorEnv.TF_CPP_MIN_LOG_LEVEL", "2")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("OFF")
    started = time.time()
    report: dict[str, Any] = {"executors": wait_for_executors(spark, 2)}
    report["seconds"] = {"session": round(started - began, 1),
                         "executors": round(time.time() - started, 1)}
    markers = work / "markers"
    markers.mkdir(parents=True, exist_ok=True)
    workers = [int(p.read_text()) for p in Path(pid_dir).glob("*Worker*.pid")]
    killed: dict[str, Any] = {}
    killer = threading.Thread(target=kill_worker_of, args=(markers, workers, killed))
    killer.start()
    df = rows_to_write(spark, wait_to_be_killed(str(markers), str(work / "out")))
    started = time.time()
    report["write"] = outcome(lambda: sparktf.write_tfrecords(df, str(work / "out")))
    report["seconds"]["write"] = round(time.time() - started, 1)
    killer.join(timeout=5)
    if "at" in killed:
        report["seconds"]["after-kill"] = round(time.time() - killed["at"], 1)
    report["killed"] = killed
    report["alive"] = {str(pid): running(pid) for pid in workers}
    started = time.time()
    spark.stop()
    report["seconds"]["stop"] = round(time.time() - started, 1)
    return report


def wait_for_executors(spark: Any, n: int, timeout: float = 60) -> int:
    """Wait until ``n`` executors have registered (one per worker); returns how many did."""
    tracker = spark.sparkContext._jsc.sc().statusTracker()
    deadline = time.time() + timeout
    while time.time() < deadline:
        count = len(tracker.getExecutorInfos()) - 1  # the driver is listed too
        if count >= n:
            return count
        time.sleep(0.2)
    return len(tracker.getExecutorInfos()) - 1


def main(argv: list[str]) -> int:
    began = time.time()
    sys.path.insert(0, str(ROOT))  # for tests.models and tests.fault_daemon
    mode, work = argv[0], Path(argv[1])
    work.mkdir(parents=True, exist_ok=True)
    try:
        if mode == "local":
            report = run_local(work, *argv[2:3])
        else:
            report = run_standalone(work, *argv[2:4])
    except Exception:
        report = {"crashed": traceback.format_exc()}
    report["total-seconds"] = round(time.time() - began, 1)
    (work / "report.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
