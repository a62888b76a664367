"""The seed's inference on a real Spark Standalone cluster on 127.0.0.1, two ways:
``sparktf infer --master spark://...`` and ``spark-submit ... sparktf/__main__.py infer``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sparktf
from tests.cluster import standalone
from tests.models import mnist_numpy

HINT = "struct<image:array<float>,label:array<float>>"
SEED = ["--schema_hint", HINT, "--input_mapping", '{"image": "x", "label": "y_"}',
        "--output_mapping", '{"prediction": "prediction", "Relu": "features"}']
BIN = Path(sys.executable).parent


def _java_home() -> str:
    java = shutil.which("java")
    assert java, "java is needed"
    return str(Path(os.path.realpath(java)).parents[1])


def _predictions(out: Path) -> list[dict]:
    rows = []
    for part in sorted(out.glob("part-*.json")):
        rows += [json.loads(line) for line in part.read_text().splitlines()]
    return rows


@pytest.fixture(scope="module")
def digits(spark, tmp_path_factory) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(11)
    images = rng.random((200, 784), dtype=np.float32)
    labels = np.eye(10, dtype=np.float32)[np.arange(200) % 10]
    rows = [(images[i].tolist(), labels[i].tolist()) for i in range(200)]
    out = tmp_path_factory.mktemp("standalone") / "tfr"
    sparktf.write_tfrecords(spark.createDataFrame(rows, HINT).coalesce(1), str(out))
    return out, images


def test_seed_inference_on_a_standalone_cluster(digits, mnist_export, tmp_path) -> None:
    expected, hidden = mnist_numpy(digits[1])
    main_py = Path(sparktf.__file__).parent / "__main__.py"
    with standalone(tmp_path / "cluster", workers=1, cores=2) as cluster:
        env = dict(cluster.env, SPARK_LOCAL_IP="127.0.0.1")
        confs = ["--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.ui.enabled=false"]
        cli = subprocess.run(
            [str(BIN / "sparktf"), "infer", "--master", cluster.url, *confs,
             "--export_dir", str(mnist_export), "--input", str(digits[0]), *SEED,
             "--output", str(tmp_path / "cli")],
            env=env, capture_output=True, text=True, timeout=400)
        assert cli.returncode == 0, cli.stderr[-3000:]
        submit = subprocess.run(
            [str(BIN / "spark-submit"), "--master", cluster.url,
             "--conf", "spark.cores.max=2", "--conf", "spark.task.cpus=1",
             "--conf", f"spark.executorEnv.JAVA_HOME={_java_home()}",
             "--conf", f"spark.pyspark.python={sys.executable}",
             "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.ui.enabled=false",
             str(main_py), "infer", "--export_dir", str(mnist_export), "--input",
             str(digits[0]), *SEED, "--output", str(tmp_path / "submit")],
            env=env, capture_output=True, text=True, timeout=400)
        assert submit.returncode == 0, submit.stderr[-3000:]
    for out in (tmp_path / "cli", tmp_path / "submit"):
        rows = _predictions(out)
        assert [r["prediction"] for r in rows] == expected.tolist()
        assert np.allclose([r["features"] for r in rows], hidden, atol=1e-4)
    assert "sparktf infer: 200 rows" in cli.stderr
