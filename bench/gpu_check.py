"""GPU check (issue 24), for a machine with NVIDIA GPUs: ``sparktf infer`` on CPU and on GPU.

On a Spark Standalone cluster on 127.0.0.1 whose worker discovers the machine's GPUs
(``nvidia-smi`` through a discovery script), score two models through ``sparktf infer``,
each twice: without GPU resources (CPU), and with ``spark.executor.resource.gpu.amount`` =
the GPUs and ``--gpus_per_task 1`` (each task's model placed on its GPU):

- the MNIST model of the benchmarks (TF1 graph, 784 -> 128 -> 10), on MNIST-shaped records;
- a convolutional Keras model built here (no download; random weights, 64x64x3 images,
  four conv blocks, ~1.2M parameters), saved as a ``.keras`` file that sparktf converts.

It prints, as JSON: the GPUs TensorFlow sees, each run's wall seconds and records/s, the
GPU/CPU ratio, the largest absolute difference of the outputs between the two runs (they
must agree within float tolerance), and each GPU's utilisation and memory sampled with
``nvidia-smi`` every 0.5 s during the GPU runs.

One command (the project's virtual environment must hold a GPU build of TensorFlow, e.g.
``pip install 'sparktf[gpu]'``)::

    .venv/bin/python bench/gpu_check.py [--records 200000] [--images 20000] [--work DIR]

Without a GPU (``nvidia-smi`` missing, or TensorFlow sees none) it says so and exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
BIN = Path(sys.executable).parent


def gpus() -> list[str]:
    """The GPU indices ``nvidia-smi`` lists ([] without it)."""
    if shutil.which("nvidia-smi") is None:
        return []
    done = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                          capture_output=True, text=True)
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def tensorflow_gpus() -> list[str]:
    code = ("from sparktf._tf import tensorflow; tf = tensorflow(); "
            "print([d.name for d in tf.config.list_physical_devices('GPU')])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT)
    return json.loads(done.stdout.strip().replace("'", '"') or "[]")


class Sampler:
    """``nvidia-smi`` utilisation and memory of each GPU, every 0.5 s while running."""

    def __init__(self) -> None:
        self.samples: list[list[tuple[int, int, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            done = subprocess.run(
                ["nvidia-smi", "--query-gpu=index,utilization.gpu,memory.used",
                 "--format=csv,noheader,nounits"], capture_output=True, text=True)
            rows = [tuple(int(x) for x in line.split(",")) for line in done.stdout.splitlines()
                    if line.strip()]
            self.samples.append(rows)  # type: ignore[arg-type]
            self._stop.wait(0.5)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for index in sorted({row[0] for rows in self.samples for row in rows}):
            util = [row[1] for rows in self.samples for row in rows if row[0] == index]
            mem = [row[2] for rows in self.samples for row in rows if row[0] == index]
            out[str(index)] = {"mean_util_pct": round(sum(util) / len(util), 1),
                               "max_util_pct": max(util), "max_memory_mib": max(mem)}
        return out


def conv_model(path: Path) -> Path:
    from sparktf._tf import tensorflow

    tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input(shape=(64 * 64 * 3,), name="image")
    x = keras.layers.Reshape((64, 64, 3))(image)
    for filters in (32, 64, 128, 256):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    probs = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    keras.Model(image, probs).save(str(path))
    return path


def image_records(out: Path, count: int, files: int = 16) -> Path:
    """``count`` random 64x64x3 images (``image`` 12,288 floats, ``id``) in ``files`` files."""
    import numpy as np
    import pyarrow as pa
    from pyspark.sql.types import ArrayType, FloatType, LongType, StructField, StructType

    from sparktf.tfrecord.encode import Encoder
    from sparktf.tfrecord.framing import RecordFileWriter, frame

    if (out / f"_DONE_{count}").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    schema = StructType([StructField("image", ArrayType(FloatType())),
                         StructField("id", LongType())])
    encoder, rng = Encoder(schema, "Example"), np.random.default_rng(0)
    per = count // files
    for f in range(files):
        with RecordFileWriter(str(out / f"part-{f:05d}.tfrecord")) as writer:
            for start in range(0, per, 500):
                n = min(500, per - start)
                pixels = rng.random((n, 64 * 64 * 3), dtype=np.float32)
                lists = pa.FixedSizeListArray.from_arrays(pa.array(pixels.ravel()),
                                                          64 * 64 * 3).cast(
                    pa.list_(pa.float32()))
                ids = pa.array(np.arange(f * per + start, f * per + start + n))
                batch = pa.record_batch([lists, ids], names=["image", "id"])
                writer.write_framed(b"".join(map(frame, encoder.encode(batch))))
    (out / f"_DONE_{count}").write_text("ok")
    return out


def infer(master: str, args: list[str], out: Path, gpu_count: int) -> float:
    confs = ["--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.ui.enabled=false",
             "--conf", f"spark.pyspark.python={sys.executable}"]
    if gpu_count:
        confs += ["--conf", f"spark.executor.resource.gpu.amount={gpu_count}",
                  "--gpus_per_task", "1"]
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([str(BIN / "sparktf"), "infer", "--master", master, *confs, *args,
                    "--output", str(out), "--output_format", "parquet"], check=True)
    return time.perf_counter() - start


def outputs(out: Path, column: str) -> tuple[list[int], list[list[float]]]:
    import pyarrow.parquet as pq

    table = pq.read_table(str(out)).sort_by("id")
    return table.column("id").to_pylist(), table.column(column).to_pylist()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "output" / "gpu")
    args = parser.parse_args()
    found, seen = gpus(), tensorflow_gpus()
    if not found or not seen:
        print(json.dumps({"nvidia_smi_gpus": found, "tensorflow_gpus": seen,
                          "error": "no GPU usable by TensorFlow here"}))
        return 2
    import numpy as np
    from common import make_tfrecords
    from model_bench import model

    from tests.cluster import standalone

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    mnist = make_tfrecords(work / f"mnist-{args.records}", args.records, 16)
    images = image_records(work / f"images-{args.images}", args.images)
    script = work / "gpus.sh"
    script.write_text("#!/bin/sh\nnvidia-smi --query-gpu=index --format=csv,noheader | "
                      "awk 'BEGIN{printf \"{\\\"name\\\": \\\"gpu\\\", \\\"addresses\\\": [\"}"
                      "{printf \"%s\\\"%s\\\"\", (NR>1?\",\":\"\"), $1}END{print \"]}\"}'\n")
    script.chmod(0o755)
    opts = (f"-Dspark.worker.resource.gpu.amount={len(found)} "
            f"-Dspark.worker.resource.gpu.discoveryScript={script}")
    jobs = {
        "mnist (TF1 graph)": (["--export_dir", str(model(work)), "--input", str(mnist),
                               "--schema_hint", "image array<float>, label array<float>",
                               "--input_mapping", '{"image": "x"}', "--output_mapping",
                               '{"Relu": "out"}', "--keep_columns", "label"],
                              args.records),
        "conv net (.keras)": (["--export_dir", str(conv_model(work / "conv.keras")), "--input",
                               str(images), "--signature_def_key", "serving_default",
                               "--input_mapping", '{"image": "image"}', "--output_mapping",
                               '{"probs": "out"}', "--keep_columns", "id"], args.images),
    }
    report: dict[str, object] = {"nvidia_smi_gpus": found, "tensorflow_gpus": seen}
    cores = os.cpu_count() or 2
    with standalone(work / "cluster", workers=1, cores=cores, memory="32g",
                    worker_opts=opts) as cluster:
        for name, (job, count) in jobs.items():
            cpu_s = infer(cluster.url, job, work / "out-cpu", 0)
            with Sampler() as sampler:
                gpu_s = infer(cluster.url, job, work / "out-gpu", len(found))
            key = "id" if "--keep_columns" in job and job[-1] == "id" else None
            if key:
                _, cpu_out = outputs(work / "out-cpu", "out")
                _, gpu_out = outputs(work / "out-gpu", "out")
                diff = float(np.max(np.abs(np.array(cpu_out) - np.array(gpu_out))))
            else:
                import pyarrow.parquet as pq

                a = np.array(sorted(map(tuple, pq.read_table(str(work / "out-cpu"))
                                        .column("out").to_pylist())))
                b = np.array(sorted(map(tuple, pq.read_table(str(work / "out-gpu"))
                                        .column("out").to_pylist())))
                diff = float(np.max(np.abs(a - b)))
            report[name] = {"records": count, "cpu_s": round(cpu_s, 1),
                            "gpu_s": round(gpu_s, 1),
                            "cpu_records_per_s": round(count / cpu_s),
                            "gpu_records_per_s": round(count / gpu_s),
                            "gpu_vs_cpu": round(cpu_s / gpu_s, 2),
                            "max_abs_output_difference": diff,
                            "outputs_agree": diff < 1e-3, "gpus": sampler.summary()}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
