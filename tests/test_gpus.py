"""GPUs through Spark's resource scheduling, tested without a GPU: a Standalone worker whose
discovery script reports two GPU addresses; each task's model is placed on the address it
holds (TensorFlow's soft placement runs it on the CPU here), predictions equal a run
without GPU resources, and the executor log names each address."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import sparktf
from sparktf.model.runtime import Feed, Fetch, Plan, clear_cache, get_model, task_gpus
from tests.cluster import standalone
from tests.models import mnist_numpy
from tests.processes import noise, run_sparktf

HINT = "struct<image:array<float>,label:array<float>>"
MAPPING = ["--schema_hint", HINT, "--input_mapping", '{"image": "x"}',
           "--output_mapping", '{"prediction": "prediction", "Relu": "features"}']


@pytest.fixture(scope="module")
def digits(spark, tmp_path_factory) -> tuple[Path, np.ndarray]:
    images = np.random.default_rng(24).random((120, 784), dtype=np.float32)
    rows = [(images[i].tolist(), np.eye(10)[i % 10].tolist()) for i in range(120)]
    out = tmp_path_factory.mktemp("gpus") / "tfr"
    sparktf.write_tfrecords(spark.createDataFrame(rows, HINT).repartition(6), str(out))
    return out, images


def test_outside_a_task_there_is_no_gpu() -> None:
    assert task_gpus() == ()


def test_a_worker_keeps_one_model_per_gpu(mnist_export, capfd) -> None:
    """A reused worker whose later task holds another GPU loads the model there too."""
    clear_cache()
    on_0 = get_model(str(mnist_export), ("serve",), "mnist", ("0",))
    assert get_model(str(mnist_export), ("serve",), "mnist", ("0",)) is on_0
    on_1 = get_model(str(mnist_export), ("serve",), "mnist", ("1",))
    assert on_1 is not on_0
    plan = Plan(export_dir=str(mnist_export), tags=("serve",),
                feeds=(Feed("image", "x:0", "float32", (None, 784)),),
                fetches=(Fetch("prediction:0", "prediction", "int64", (None,)),))
    rows = np.random.default_rng(1).random((5, 784), dtype=np.float32)
    expected = mnist_numpy(rows)[0].tolist()
    for model in (on_0, on_1):
        (found,) = model.run([plan.feeds[0].tensor], [plan.fetches[0].tensor], [rows])
        assert found.tolist() == expected
    err = capfd.readouterr().err
    assert "sparktf: loaded model mnist on GPU 0" in err and "on GPU 1" in err
    clear_cache()


def test_tasks_place_the_model_on_the_gpu_they_hold(digits, mnist_export, tmp_path) -> None:
    script = tmp_path / "gpus.sh"
    script.write_text('#!/bin/sh\necho \'{"name": "gpu", "addresses": ["0", "1"]}\'\n')
    script.chmod(0o755)
    opts = (f"-Dspark.worker.resource.gpu.amount=2 "
            f"-Dspark.worker.resource.gpu.discoveryScript={script}")
    confs = ["--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.ui.enabled=false",
             "--conf", f"spark.pyspark.python={sys.executable}",
             "--conf", "spark.sql.files.maxPartitionBytes=50k"]
    base = ["infer", "--export_dir", str(mnist_export), "--input", str(digits[0]), *MAPPING]
    with standalone(tmp_path / "cluster", workers=1, cores=2, worker_opts=opts) as cluster:
        gpu = run_sparktf([*base, "--master", cluster.url, *confs, "--conf",
                           "spark.executor.resource.gpu.amount=2", "--gpus_per_task", "1",
                           "--output", str(tmp_path / "gpu")], onednn="0", timeout=400)
        cpu = run_sparktf([*base, "--master", cluster.url, *confs,
                           "--output", str(tmp_path / "cpu")], onednn="0", timeout=400)
        logs = "".join(p.read_text(errors="replace")
                       for p in (tmp_path / "cluster" / "work").rglob("stderr"))
    assert gpu.returncode == 0 and noise(gpu.stderr) == [], gpu.stderr[-3000:]
    assert cpu.returncode == 0, cpu.stderr[-3000:]
    expected = mnist_numpy(digits[1])[0].tolist()
    found = {}
    for out in ("gpu", "cpu"):
        rows = [json.loads(line) for part in sorted((tmp_path / out).glob("part-*.json"))
                for line in part.read_text().splitlines()]
        found[out] = sorted((r["features"], r["prediction"]) for r in rows)
        assert sorted(r["prediction"] for r in rows) == sorted(expected)
    assert found["gpu"] == found["cpu"]  # the same predictions, row for row
    placed = {line.split(" on GPU ")[1].split()[0] for line in logs.splitlines()
              if "sparktf: loaded model" in line}
    assert placed == {"0", "1"}, logs[-3000:]
