"""Fault tolerance of TFRecord writes and reads, and of TFModel inference, through Spark.

A task that fails once, or whose Python worker is killed, in the middle of a write, after a
read, or in the middle of TFModel inference (on the fused path, a ``read_tfrecords`` scan
scored by ``score_files``, and on the general one, ``map_batches``) is retried, and the output
holds every input row exactly once, with no staging files left and, for inference, every
prediction equal to the plain numpy result; a job that cannot succeed leaves no ``_SUCCESS``,
no visible part file, and an existing output as it was. Local mode retries tasks only under
``local[N,F]``, so the jobs run in their own Spark session in a subprocess
(``tests/fault_jobs.py``); the checks below read what they left on disk. Inference faults come
from that session's Python daemon, ``tests/fault_daemon.py``, which wraps
``sparktf.model.runtime.run_batch`` in every worker: after ``FAULT_AFTER`` model batches, with
the model loaded and output staged, a chosen task's first attempt raises or SIGKILLs its
worker. The Standalone case kills a whole Worker JVM and its executor mid-job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pyspark.sql.types import ArrayType, FloatType, LongType, StructField, StructType

from sparktf.errors import TFRecordError
from sparktf.spark import commit
from sparktf.tfrecord.decode import Decoder
from sparktf.tfrecord.framing import list_data_files
from sparktf.tfrecord.reader import ReadSettings, read_file
from tests.fault_jobs import BATCH, FAULT_AFTER, FAULTY, KILLED, PARTITIONS, ROWS, WIDTH

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = StructType([StructField("id", LongType()), StructField("x", ArrayType(FloatType()))])
SCORED = StructType([StructField("id", LongType()), StructField("total", FloatType()),
                     StructField("doubled", ArrayType(FloatType()))])
EXPECTED = {"n": ROWS, "s": sum(range(ROWS)), "q": sum(i * i for i in range(ROWS))}


def run_jobs(*args: str, timeout: int) -> dict[str, Any]:
    """Run ``tests/fault_jobs.py`` with ``args`` and return its report."""
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable,
               PYSPARK_DRIVER_PYTHON=sys.executable, TF_CPP_MIN_LOG_LEVEL="2")
    work = Path(args[1])
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "fault_jobs.py"), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    report_file = work / "report.json"
    assert report_file.exists(), f"no report (exit {done.returncode}): {done.stderr[-3000:]}"
    report = json.loads(report_file.read_text())
    assert "crashed" not in report, report.get("crashed")
    return report


@pytest.fixture(scope="module")
def local_jobs(tmp_path_factory: pytest.TempPathFactory,
               s3: str) -> tuple[dict[str, Any], Path]:
    """The fault jobs, with the S3 ones (``s3_jobs``) into the moto bucket; the job's workers
    stage in ``<work>/scratch`` (``SPARKTF_SCRATCH_DIR``), checked to be left empty."""
    work = tmp_path_factory.mktemp("faults")
    (work / "scratch").mkdir()
    os.environ["SPARKTF_SCRATCH_DIR"] = str(work / "scratch")
    try:
        return run_jobs("local", str(work), f"s3://{s3}/faults-{work.name}", timeout=420), work
    finally:
        del os.environ["SPARKTF_SCRATCH_DIR"]


def rows_in(out: Path, schema: StructType = SCHEMA) -> tuple[np.ndarray, list[list[Any]]]:
    """The ``id`` (the first column) and the other columns of ``schema`` of every record in the
    data files of ``out``, read without Spark."""
    ids, rest = [], [[] for _ in schema.fields[1:]]
    for path in list_data_files(str(out)):
        for batch in read_file(path, Decoder(schema, "Example"), ReadSettings()):
            ids.append(batch.column(0).to_numpy())
            for i, values in enumerate(rest, start=1):
                values.extend(batch.column(i).to_pylist())
    return (np.concatenate(ids) if ids else np.array([], np.int64)), rest


def assert_committed_ids(out: Path, ids: np.ndarray) -> None:
    """Committed, nothing staged left, one part file per partition; ``ids`` are every input
    id exactly once (count, sum and sum of squares too)."""
    names = sorted(p.name for p in out.iterdir())
    assert "_SUCCESS" in names and "_temporary" not in names, names
    assert len([n for n in names if n.startswith("part-")]) == PARTITIONS, names
    assert (np.sort(ids) == np.arange(ROWS)).all(), "ids lost or duplicated"
    checksum = {"n": len(ids), "s": int(ids.sum()), "q": int((ids * ids).sum())}
    assert checksum == EXPECTED


def inputs_of(ids: np.ndarray) -> np.ndarray:
    """The ``x`` of each id: ``[id / 2] * WIDTH`` as float32."""
    return np.repeat((ids / 2).astype(np.float32)[:, None], WIDTH, axis=1)


def assert_exact_output(out: Path) -> None:
    """Every id written exactly once with its own values; committed; nothing staged left."""
    ids, (xs,) = rows_in(out)
    assert_committed_ids(out, ids)
    assert (np.array(xs, dtype=np.float32) == inputs_of(ids)).all()


@pytest.mark.parametrize(("kind", "partition"), [("raise", FAULTY), ("kill", KILLED)])
def test_task_failing_once_mid_write_is_retried_exactly(local_jobs, kind, partition) -> None:
    report, work = local_jobs
    assert report["write-once"]["ok"], report["write-once"]
    hit = report["faults"][f"write-once-{kind}-0"]
    assert (hit["partition"], hit["attempt"]) == (partition, 0)
    assert hit["staged"], "the fault did not hit while the writer had a staged file"
    assert f"write-once-{kind}-1" not in report["faults"]  # the retry went through
    assert_exact_output(work / "write-once")


@pytest.mark.parametrize(("kind", "partition"), [("raise", FAULTY), ("kill", KILLED)])
def test_task_failing_once_after_a_read_is_retried_exactly(local_jobs, kind, partition) -> None:
    report, _ = local_jobs
    hit = report["faults"][f"read-once-{kind}-0"]
    assert (hit["partition"], hit["attempt"]) == (partition, 0)
    assert f"read-once-{kind}-1" not in report["faults"]
    assert report["read-once"]["ok"], report["read-once"]
    assert report["read-once"]["result"] == EXPECTED


@pytest.mark.parametrize("path", ["fused", "general"])
@pytest.mark.parametrize(("kind", "partition"), [("raise", FAULTY), ("kill", KILLED)])
def test_task_failing_once_mid_inference_is_retried_exactly(local_jobs, path, kind,
                                                             partition) -> None:
    report, work = local_jobs
    assert report[path]["ok"], report[path]
    hit = report["faults"][f"{path}-{kind}-0"]
    assert (hit["partition"], hit["attempt"]) == (partition, 0)
    # in the middle of inference: the model loaded, FAULT_AFTER of 10 batches scored, output
    # staged by the writer; on the path asked for
    assert hit["loaded"], hit
    assert (hit["batches"], hit["rows"]) == (FAULT_AFTER, FAULT_AFTER * BATCH), hit
    assert hit["staged"], "the fault did not hit while the writer had a staged file"
    assert "sparktf.model.runtime.map_batches" in hit["callers"], hit["callers"]
    assert ("sparktf.model.fused.score_files" in hit["callers"]) == (path == "fused")
    assert f"{path}-{kind}-1" not in report["faults"]
    # the second attempt scored the partition again, in another process if this one was killed
    attempts = sorted(v["attempt"] for k, v in report["faults"].items()
                      if k.startswith(f"{path}-scored-{partition}-"))
    assert attempts == [0, 1], attempts
    if kind == "kill":
        assert report["faults"][f"{path}-scored-{partition}-1"]["pid"] != hit["pid"]
    ids, (total, doubled) = rows_in(work / path, SCORED)
    assert_committed_ids(work / path, ids)
    x = inputs_of(ids)
    assert (np.array(total, dtype=np.float32) == x.sum(axis=1)).all()
    assert (np.array(doubled, dtype=np.float32) == x * 2).all()


def test_inference_faults_retried_only_the_faulted_tasks_once(local_jobs) -> None:
    report, _ = local_jobs
    for path in ("fused", "general"):
        scored = {k for k in report["faults"] if k.startswith(f"{path}-scored-")}
        expected = {f"{path}-scored-{p}-0" for p in range(PARTITIONS)}
        expected |= {f"{path}-scored-{p}-1" for p in (FAULTY, KILLED)}
        assert scored == expected, sorted(scored)


def test_job_that_cannot_succeed_leaves_existing_output_untouched(local_jobs) -> None:
    report, work = local_jobs
    failed = report["keep-always"]
    assert not failed["ok"]
    # the last of the four attempts raised; one line says what sparktf was doing, then the
    # worker's own error
    assert failed["error"] == "SparkTFError"
    assert failed["message"] == (f"writing TFRecords to {work / 'keep'}: RuntimeError: "
                                 f"injected fault in partition {FAULTY}, attempt 3")
    assert [f"keep-raise-{i}" in report["faults"] for i in range(5)] == [True] * 4 + [False]
    assert report["keep-after"] == report["keep-before"]
    assert sorted(report["keep-before"])[0] == "_SUCCESS"
    assert not (work / "keep" / "_temporary").exists()
    ids, _ = rows_in(work / "keep")
    assert sorted(ids.tolist()) == list(range(10))


def test_job_that_cannot_succeed_leaves_nothing_at_a_fresh_path(local_jobs) -> None:
    report, work = local_jobs
    failed = report["fresh-always"]
    assert not failed["ok"]
    assert f"Task {FAULTY} in stage" in failed["message"]
    assert "failed 4 times" in failed["message"]
    assert "Python worker exited unexpectedly" in failed["message"]
    assert [f"fresh-kill-{i}" in report["faults"] for i in range(5)] == [True] * 4 + [False]
    # no _SUCCESS, no part file, no staging area: the path the job created is gone again
    assert not (work / "fresh").exists(), sorted(str(p) for p in (work / "fresh").rglob("*"))


# -- the commit protocol against late task attempts (no Spark: the same calls in order) -----


def _late_attempt(out: Path, job: str, partition: int = 2, attempt: int = 3) -> None:
    with pytest.raises(TFRecordError, match=rf"^output path {out}: job {job} has already been "
                       rf"committed or aborted; this task attempt \(partition {partition}, "
                       rf"attempt {attempt}\) writes nothing$"):
        commit.task_path(str(out), job, partition, attempt, "part.tfrecord")


def test_task_attempt_starting_after_abort_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    commit.start_job(str(out), "job1")
    early = Path(commit.task_path(str(out), "job1", 0, 0, "part-0.tfrecord"))
    early.write_bytes(b"staged")
    commit.abort_job(str(out), "job1")
    _late_attempt(out, "job1")
    assert not out.exists()


def test_task_attempt_starting_after_commit_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    commit.start_job(str(out), "job1")
    staged = commit.task_path(str(out), "job1", 0, 0, "part-0.tfrecord")
    Path(staged).write_bytes(b"staged")
    message = commit.TaskCommit(staged=staged, final="part-0.tfrecord", records=1)
    assert commit.commit_job(str(out), "job1", [message, None], overwrite=False) == 1
    _late_attempt(out, "job1")
    assert sorted(p.name for p in out.iterdir()) == ["_SUCCESS", "part-0.tfrecord"]


def test_task_attempt_racing_with_abort_cannot_add_a_file(tmp_path: Path) -> None:
    """An attempt that made its folder just before the abort, and opens its file just after,
    fails to open it: the abort renamed the staging directory before removing it."""
    out = tmp_path / "out"
    commit.start_job(str(out), "job1")
    staged = commit.task_path(str(out), "job1", 2, 3, "part-2.tfrecord")
    commit.abort_job(str(out), "job1")
    with pytest.raises(FileNotFoundError):
        open(staged, "wb")  # what RecordFileWriter does first
    assert not out.exists()


def test_staging_directory_is_refused_where_a_file_is_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(TFRecordError, match=rf"^output path {tmp_path}/file is not writable: "
                       rf"cannot create {tmp_path}/file/_temporary/job1 \(Not a directory\)$"):
        commit.start_job(str(tmp_path / "file"), "job1")
    assert (tmp_path / "file").read_bytes() == b"x"


@pytest.mark.slow
def test_standalone_worker_killed_mid_write(tmp_path: Path) -> None:
    from tests.cluster import standalone

    with standalone(tmp_path / "cluster", workers=2, cores=1, memory="1g") as cluster:
        assert len(cluster.worker_pids()) == 2 and cluster.alive_workers() == 2
        report = run_jobs("standalone", str(tmp_path / "job"), cluster.url,
                          str(tmp_path / "cluster" / "pids"), timeout=300)
    assert report["executors"] == 2, report
    killed = report["killed"]
    assert killed.get("known") and killed.get("is_executor"), killed
    assert killed["staged"], "the worker was not killed while its writer had a staged file"
    assert report["alive"][str(killed["worker"])] is False, report["alive"]
    assert list(report["alive"].values()).count(True) == 1  # the other worker carried on
    assert report["write"]["ok"], report["write"]
    assert_exact_output(tmp_path / "job" / "out")


def test_s3_write_faults_commit_each_row_once(local_jobs) -> None:
    """On S3 (the manifest protocol, no renames): a task that raised and a worker SIGKILLed
    mid-write are retried, and the output holds every row exactly once in one file per
    partition and nothing else; a job whose task is killed on every attempt leaves no object
    under its path; the killed workers' scratch files are gone."""
    from sparktf import fs, manifest
    from tests import s3server

    report, work = local_jobs
    url = report["s3-url"]
    assert report["s3-once"]["ok"], report["s3-once"]
    assert {k for k in report["faults"] if k.startswith("s3once")} == {
        "s3once-raise-0", "s3once-kill-0"}
    entries = manifest.read(f"{url}/once")
    assert len(entries) == PARTITIONS and sum(e.records for e in entries) == ROWS
    attempt = {int(e.name.split("-")[1]): e.name.rsplit("-a", 1)[1] for e in entries}
    assert attempt[FAULTY].startswith("1.") and attempt[KILLED].startswith("1."), attempt
    assert fs.entries(f"{url}/once") == ["_SUCCESS", *sorted(e.name for e in entries)]
    ids, _ = rows_in(f"{url}/once")
    assert (np.sort(ids) == np.arange(ROWS)).all(), "ids lost or duplicated"
    assert not report["s3-fresh"]["ok"]
    assert [f"s3fresh-kill-{i}" in report["faults"] for i in range(5)] == [True] * 4 + [False]
    bucket, prefix = url[len("s3://"):].split("/", 1)
    assert not [k for k in s3server.keys(bucket) if k.startswith(f"{prefix}/fresh")]
    assert not [p for p in (work / "scratch").rglob("*") if p.is_file()]
