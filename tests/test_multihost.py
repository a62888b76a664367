"""sparktf on a Standalone cluster of three hosts with no loopback and no shared disk between
them but one shared folder (``tests/multihost.py``: network, mount and UTS namespaces).

The model and the drivers' working folders live in the temp folder, which the worker hosts do
not see; the input and the outputs live in the cluster's ``shared`` folder (a stand-in for a
shared filesystem). Results are compared with the model computed by numpy, row by row (ids).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sparktf.errors import TFRecordError
from sparktf.spark import commit
from tests.models import mnist_numpy
from tests.multihost import (
    PREFIX,
    ROOT,
    STATE,
    STATE_PREFIX,
    MultiHost,
    clean_leftovers,
    multihost,
    unavailable,
)
from tests.processes import note_line

pytestmark = pytest.mark.multihost

ROWS, FILES = 3000, 4
HINT = "struct<id:bigint,image:array<float>>"
BIN = Path(sys.executable).parent
MAPPINGS = ["--input_mapping", '{"image": "x"}',
            "--output_mapping", '{"prediction": "prediction", "Relu": "features"}']
CONFS = [f"spark.pyspark.python={sys.executable}", f"spark.executorEnv.PYTHONPATH={ROOT}",
         "spark.executor.memory=768m", "spark.ui.enabled=false"]


@pytest.fixture(scope="module")
def cluster() -> MultiHost:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    with multihost() as running:
        yield running


@pytest.fixture(scope="module")
def digits(cluster: MultiHost) -> tuple[Path, np.ndarray]:
    """``ROWS`` MNIST-shaped records (``id``, ``image``) in ``FILES`` files, in the shared
    folder; written with TensorFlow itself."""
    from sparktf._tf import example_pb2, tensorflow

    tf, pb = tensorflow(), example_pb2()
    images = np.random.default_rng(16).random((ROWS, 784), dtype=np.float32)
    folder = cluster.shared / "input"
    folder.mkdir()
    for part, ids in enumerate(np.array_split(np.arange(ROWS), FILES)):
        with tf.io.TFRecordWriter(str(folder / f"part-{part}.tfrecord")) as writer:
            for i in ids:
                example = pb.Example()
                example.features.feature["id"].int64_list.value.append(int(i))
                example.features.feature["image"].float_list.value.extend(images[i])
                writer.write(example.SerializeToString())
    return folder, images


def _check(rows: list[dict], images: np.ndarray) -> None:
    """Every id exactly once, with the model's prediction and hidden layer."""
    rows = sorted(rows, key=lambda r: r["id"])
    assert [r["id"] for r in rows] == list(range(ROWS))
    expected, hidden = mnist_numpy(images)
    assert [r["prediction"] for r in rows] == expected.tolist()
    assert np.allclose([r["features"] for r in rows], hidden, atol=1e-4)


def _json_rows(out: Path) -> list[dict]:
    return [json.loads(line) for part in sorted(out.glob("part-*.json"))
            for line in part.read_text().splitlines()]


def _infer(cluster: MultiHost, cwd: Path, export: Path, inputs: Path, out: Path,
           *extra: str) -> subprocess.Popen:
    confs = [arg for conf in CONFS for arg in ("--conf", conf)]
    return cluster.driver(
        [str(BIN / "sparktf"), "infer", "--master", cluster.url, *confs, "--export_dir",
         str(export), "--input", str(inputs), "--schema_hint", HINT, *MAPPINGS,
         "--keep_columns", "id", "--output", str(out), *extra], cwd=cwd)


def _finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return process.returncode, err


def _apps(cluster: MultiHost, host: str) -> set[str]:
    return {p.name for p in (cluster.state / host / "work").glob("app-*")}


def test_worker_hosts_see_the_shared_folder_only(cluster, mnist_export, tmp_path) -> None:
    for host in ("w1", "w2"):
        assert not cluster.sees(host, mnist_export)
        assert not cluster.sees(host, tmp_path)
        assert cluster.sees(host, cluster.shared)
        assert cluster.sees(host, ROOT / "sparktf" / "__init__.py")  # installed code


def test_infer_ships_a_driver_local_model(cluster, digits, mnist_export, tmp_path) -> None:
    out = cluster.shared / "out-cli"
    code, err = _finish(_infer(cluster, tmp_path, mnist_export, digits[0], out,
                               "--ship_model"))
    assert code == 0, err[-3000:]
    assert f"sparktf infer: {ROWS} rows" in err
    _check(_json_rows(out), digits[1])
    assert _apps(cluster, "w1") and _apps(cluster, "w1") == _apps(cluster, "w2")


def test_spark_submit_client_mode(cluster, digits, mnist_export, tmp_path) -> None:
    """No --master for sparktf: spark-submit's master and Spark's own driver address (the
    driver host's address on the link; executors cannot reach its loopback)."""
    out = cluster.shared / "out-submit"
    confs = [arg for conf in CONFS for arg in ("--conf", conf)]
    process = cluster.driver(
        [str(BIN / "spark-submit"), "--master", cluster.url, "--deploy-mode", "client",
         *confs, str(ROOT / "sparktf" / "__main__.py"), "infer", "--ship_model",
         "--export_dir", str(mnist_export), "--input", str(digits[0]), "--schema_hint", HINT,
         *MAPPINGS, "--keep_columns", "id", "--output", str(out)], cwd=tmp_path)
    code, err = _finish(process)
    assert code == 0, err[-3000:]
    _check(_json_rows(out), digits[1])


SCRIPT = """
import contextlib, io, json, sys
from pyspark.sql import SparkSession
import sparktf
from sparktf.cli.main import main

master, model, shared, local, report_path = sys.argv[1:6]
confs = sys.argv[6:]
builder = SparkSession.builder.master(master).appName("multihost script")
for pair in confs:
    builder = builder.config(*pair.split("=", 1))
spark = sparktf.configure_session(builder).getOrCreate()
report = {}


def score(inputs, out, ship=True):
    df = sparktf.read_tfrecords(spark, inputs, schema_hint="%(hint)s")
    scorer = sparktf.TFModel(exportDir=model, shipModel=ship, inputMapping={"image": "x"},
                             outputMapping={"prediction": "prediction", "Relu": "features"},
                             passthroughColumns=["id"])
    sparktf.write_tfrecords(scorer.transform(df), out)


def step(name, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
        report[name] = "ok"
    except Exception as exc:
        report[name] = f"{type(exc).__name__}: {exc}"


def tree():
    source = sparktf.read_tfrecords(spark, shared + "/input", schema_hint="%(hint)s")
    sparktf.write_tfrecords(source.selectExpr("*", "id %% 3 AS part"), shared + "/tree",
                            partition_by=["part"])
    back = sparktf.read_tfrecords(spark, shared + "/tree", schema_hint="%(hint)s",
                                  compression="none", max_partition_bytes="16k",
                                  open_cost_in_bytes="0")
    rows = sorted((r.id, r.part) for r in back.select("id", "part").collect())
    report["tree_rows"] = rows
    report["tree_tasks"] = back.rdd.getNumPartitions()
    report["source_ids"] = sorted(r.id for r in source.select("id").collect())


step("tree", tree)
step("shipped", score, shared + "/input", shared + "/out-script")
step("unshipped", score, shared + "/input", shared + "/out-unshipped", ship=False)
step("driver_only_input", score, local + "/input", shared + "/out-local-input")
step("driver_only_output", score, shared + "/input", local + "/out-tfrecord")
err = io.StringIO()
with contextlib.redirect_stderr(err):
    code = main(["infer", "--master", master, "--ship_model", "--export_dir", model,
                 "--input", shared + "/input", "--schema_hint", "%(hint)s",
                 "--input_mapping", '{"image": "x"}',
                 "--output_mapping", '{"prediction": "prediction"}',
                 "--output", local + "/out-json"] + [a for c in confs for a in ("--conf", c)])
report["cli_driver_only_output"] = [code, err.getvalue().strip().splitlines()[-1]]
with open(report_path, "w") as handle:
    json.dump(report, handle)
spark.stop()
"""


@pytest.fixture(scope="module")
def script(cluster, digits, mnist_export, tmp_path_factory) -> tuple[dict, Path]:
    """A PySpark script on the driver host: one session, one scoring job per step (the
    first with exact results, the others meeting paths only the driver sees); the report
    of each step and the script's temp folder."""
    local = tmp_path_factory.mktemp("driver")
    shutil.copytree(digits[0], local / "input")
    path = local / "score.py"
    path.write_text(SCRIPT % {"hint": HINT})
    code, err = _finish(cluster.driver(
        [sys.executable, str(path), cluster.url, str(mnist_export), str(cluster.shared),
         str(local), str(local / "report.json"), *CONFS, "spark.task.maxFailures=1"],
        cwd=local))
    assert code == 0, err[-3000:]
    return json.loads((local / "report.json").read_text()), local


def test_pyspark_script(cluster, digits, script) -> None:
    from sparktf._tf import example_pb2, tensorflow

    assert script[0]["shipped"] == "ok"
    out = cluster.shared / "out-script"
    assert (out / "_SUCCESS").exists()
    tf, pb = tensorflow(), example_pb2()
    rows = []
    for record in tf.data.TFRecordDataset(sorted(map(str, out.glob("part-*")))):
        feature = pb.Example.FromString(record.numpy()).features.feature
        rows.append({"id": feature["id"].int64_list.value[0],
                     "prediction": feature["prediction"].int64_list.value[0],
                     "features": list(feature["features"].float_list.value)})
    _check(rows, digits[1])


def test_partitioned_tree_written_and_read_in_splits_across_hosts(script) -> None:
    """Executors on both hosts write a key=value tree; reading it back in byte-range splits
    of 16 KiB gives each row once, with its partition value."""
    report = script[0]
    assert report["tree"] == "ok", report["tree"]
    assert report["tree_rows"] == [[i, i % 3] for i in report["source_ids"]]  # JSON lists
    assert report["tree_tasks"] > len({p for _, p in report["tree_rows"]})


def _worker_host(cluster: MultiHost, message: str) -> bool:
    return cluster.hostname("w1") in message or cluster.hostname("w2") in message


def test_unshipped_driver_local_model_is_named(cluster, mnist_export, script) -> None:
    message = script[0]["unshipped"]
    assert message.startswith(f"ModelError: SavedModel directory '{mnist_export}' does not "
                              "exist on executor host"), message
    assert _worker_host(cluster, message) and "shipModel=True" in message
    assert not (cluster.shared / "out-unshipped").exists()


def test_driver_only_input_is_named(cluster, script) -> None:
    message = script[0]["driver_only_input"]
    local = script[1] / "input"
    assert message.startswith(f"TFRecordError: input file {local}/part-"), message
    assert "does not exist on host" in message and _worker_host(cluster, message)
    assert "shared filesystem" in message and "remote storage" in message
    assert not (cluster.shared / "out-local-input").exists()


def test_driver_only_tfrecord_output_is_named(cluster, script) -> None:
    message = script[0]["driver_only_output"]
    out = script[1] / "out-tfrecord"
    assert message.startswith(f"TFRecordError: output path {out} does not exist on executor "
                              "host"), message
    assert _worker_host(cluster, message) and "shared filesystem" in message
    assert not out.exists()


def test_driver_only_json_output_is_refused(script) -> None:
    """Executors write a driver-only --output on their own disks, and Spark's commit would
    publish an empty folder with _SUCCESS: infer refuses it and leaves no output."""
    code, last = script[0]["cli_driver_only_output"]
    assert code == 1
    assert f"the executors wrote {ROWS} rows but the driver's host sees 0" in last
    assert "shared filesystem" in last
    assert not (script[1] / "out-json").exists()


def test_commit_refuses_part_files_the_driver_cannot_see(tmp_path) -> None:
    out = tmp_path / "out"
    commit.start_job(str(out), "job")
    message = commit.TaskCommit(staged=str(out / "_temporary" / "job" / "00000-0" / "p"),
                                final="part-0.tfrecord", records=5, host="other-host")
    with pytest.raises(TFRecordError, match="written on executor host other-host is not "
                       "visible on the driver's host"):
        commit.commit_job(str(out), "job", [message], overwrite=False)
    assert not (out / commit.SUCCESS).exists()


def test_leftovers_of_a_dead_run_are_removed() -> None:
    """Namespaces (and what runs in them) and state folders whose creating process is gone
    are removed by the next run; those of a live process are kept."""
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    dead = subprocess.Popen(["true"])
    dead.wait()
    names = [f"{PREFIX}{dead.pid}-test00-w1", f"{PREFIX}{os.getpid()}-test00-w1"]
    for name in names:
        subprocess.run(["ip", "netns", "add", name], check=True)
    sleeper = subprocess.Popen(["ip", "netns", "exec", names[0], "sleep", "300"])
    folder = STATE / f"{STATE_PREFIX}{dead.pid}-test00"
    (folder / "logs").mkdir(parents=True)
    try:
        clean_leftovers()
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert names[0] not in listed and names[1] in listed
        assert sleeper.wait(timeout=15) != 0 and not folder.exists()
    finally:
        sleeper.kill()
        for name in names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_task_on_a_host_without_the_output_folder_is_named(tmp_path) -> None:
    out = tmp_path / "elsewhere"  # the driver's folder, which this "host" does not have
    with pytest.raises(TFRecordError, match=rf"^output path {out} does not exist on executor "
                       r"host .* \(the driver runs on driver-host\): .* shared filesystem"):
        commit.task_path(str(out), "job", 0, 0, "part-0", driver_host="driver-host")


def test_a_worker_host_cut_off_mid_job(cluster, mnist_export, tmp_path) -> None:
    """w2's link goes down while its executor scores (``spark.network.timeout`` lowered): the
    job finishes on w1 with every row once, or fails in one line leaving no output."""
    from sparktf._tf import example_pb2
    from sparktf.tfrecord.framing import RecordFileWriter

    source = cluster.shared / "cut-input"
    source.mkdir()
    rows = 48_000
    images = np.random.default_rng(5).random((500, 784), dtype=np.float32)
    for part in range(8):
        with RecordFileWriter(str(source / f"part-{part}.tfrecord")) as writer:
            for i in range(part * rows // 8, (part + 1) * rows // 8):
                example = example_pb2().Example()
                example.features.feature["id"].int64_list.value.append(i)
                example.features.feature["image"].float_list.value.extend(images[i % 500])
                writer.write(example.SerializeToString())
    out = cluster.shared / "out-cut"
    confs = [*CONFS, "spark.network.timeout=10s", "spark.network.timeoutInterval=2s",
             "spark.executor.heartbeatInterval=1s",
             "spark.sql.files.maxPartitionBytes=2m"]
    process = cluster.driver(
        [str(BIN / "sparktf"), "infer", "--master", cluster.url, "--ship_model",
         "--export_dir", str(mnist_export), "--input", str(source), "--schema_hint", HINT,
         "--input_mapping", '{"image": "x"}', "--output_mapping",
         '{"prediction": "prediction"}', "--keep_columns", "id", "--batch_size", "16",
         "--output", str(out)] + [a for c in confs for a in ("--conf", c)], cwd=tmp_path)
    deadline = time.time() + 180
    while not cluster.python_workers("w2") and process.poll() is None:
        assert time.time() < deadline, "no task ever ran on w2"
        time.sleep(0.2)
    cluster.link("w2", up=False)
    try:
        assert process.poll() is None, "the job ended before w2 was cut off"
        code, err = _finish(process)
    finally:
        cluster.link("w2", up=True)
    last = err.strip().splitlines()[-1] if err.strip() else ""
    note_line(f"lost link, exit {code}", err)
    if code == 0:
        ids = sorted(r["id"] for r in _json_rows(out))
        assert ids == list(range(rows)), (len(ids), len(set(ids)))  # every row, once
    else:
        assert last.startswith("sparktf: error: ") and "Traceback" not in err, err[-3000:]
        assert not out.exists()


def test_a_worker_host_dies_mid_job(cluster, digits, mnist_export, tmp_path) -> None:
    """Runs last: w2 is gone afterwards. Its processes are killed while its first task
    runs; the job finishes on w1 with every row exactly once."""
    out = cluster.shared / "out-kill"
    process = _infer(cluster, tmp_path, mnist_export, digits[0], out, "--ship_model")
    deadline = time.time() + 240
    while not cluster.python_workers("w2") and time.time() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        time.sleep(0.1)
    assert cluster.python_workers("w2"), "no task reached w2"
    cluster.kill("w2")
    assert process.poll() is None  # killed mid-job
    code, err = _finish(process)
    assert code == 0, err[-3000:]
    assert not cluster.pids("w2")
    _check(_json_rows(out), digits[1])
