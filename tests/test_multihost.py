"""sparktf on a Standalone cluster of three hosts with no loopback and no shared disk between
them but one shared folder (``tests/multihost.py``: network, mount and UTS namespaces).

The model and the drivers' working folders live in the temp folder, which the worker hosts do
not see; the input and the outputs live in the cluster's ``shared`` folder (a stand-in for a
shared filesystem). Results are compared with the model computed by numpy, row by row (ids).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from sparktf.errors import TFRecordError
from sparktf.spark import commit
from tests.models import mnist_numpy
from tests.multihost import ROOT, MultiHost, multihost, unavailable

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
import sys
from pyspark.sql import SparkSession
import sparktf

master, model, inputs, out = sys.argv[1:5]
builder = SparkSession.builder.master(master).appName("multihost script")
for pair in sys.argv[5:]:
    builder = builder.config(*pair.split("=", 1))
spark = sparktf.configure_session(builder).getOrCreate()
df = sparktf.read_tfrecords(spark, inputs, schema_hint="{hint}")
scored = sparktf.TFModel(exportDir=model, shipModel=True, inputMapping={{"image": "x"}},
                         outputMapping={{"prediction": "prediction", "Relu": "features"}},
                         passthroughColumns=["id"]).transform(df)
sparktf.write_tfrecords(scored, out)
spark.stop()
"""


def test_pyspark_script(cluster, digits, mnist_export, tmp_path) -> None:
    from sparktf._tf import example_pb2, tensorflow

    script = tmp_path / "score.py"
    script.write_text(textwrap.dedent(SCRIPT.format(hint=HINT)))
    out = cluster.shared / "out-script"
    code, err = _finish(cluster.driver(
        [sys.executable, str(script), cluster.url, str(mnist_export), str(digits[0]),
         str(out), *CONFS], cwd=tmp_path))
    assert code == 0, err[-3000:]
    assert (out / "_SUCCESS").exists()
    tf, pb = tensorflow(), example_pb2()
    rows = []
    for record in tf.data.TFRecordDataset(sorted(map(str, out.glob("part-*")))):
        feature = pb.Example.FromString(record.numpy()).features.feature
        rows.append({"id": feature["id"].int64_list.value[0],
                     "prediction": feature["prediction"].int64_list.value[0],
                     "features": list(feature["features"].float_list.value)})
    _check(rows, digits[1])


def test_unshipped_driver_local_model_is_named(cluster, digits, mnist_export,
                                               tmp_path) -> None:
    code, err = _finish(_infer(cluster, tmp_path, mnist_export, digits[0],
                               cluster.shared / "out-unshipped",
                               "--conf", "spark.task.maxFailures=1"))
    last = err.strip().splitlines()[-1]
    assert code == 1, err[-3000:]
    assert f"SavedModel directory '{mnist_export}' does not exist on executor host" in last
    assert cluster.hostname("w1") in last or cluster.hostname("w2") in last
    assert "--ship_model" in last
    assert not (cluster.shared / "out-unshipped").exists()


def test_driver_only_output_is_refused(cluster, digits, mnist_export, tmp_path) -> None:
    """Executors write a driver-only --output on their own disks: Spark's commit would
    publish an empty folder with _SUCCESS; infer refuses it and leaves no output."""
    out = tmp_path / "out"
    code, err = _finish(_infer(cluster, tmp_path, mnist_export, digits[0], out,
                               "--ship_model"))
    last = err.strip().splitlines()[-1]
    assert code == 1, err[-3000:]
    assert f"the executors wrote {ROWS} rows but the driver's host sees 0" in last
    assert "shared filesystem" in last
    assert not out.exists()


def test_commit_refuses_part_files_the_driver_cannot_see(tmp_path) -> None:
    out = tmp_path / "out"
    commit.start_job(str(out), "job")
    message = commit.TaskCommit(staged=str(out / "_temporary" / "job" / "00000-0" / "p"),
                                final="part-0.tfrecord", records=5, host="other-host")
    with pytest.raises(TFRecordError, match="written on executor host other-host is not "
                       "visible on the driver's host"):
        commit.commit_job(str(out), "job", [message], overwrite=False)
    assert not (out / commit.SUCCESS).exists()


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
