"""``make demo``: the MNIST walk-through end to end, on local Spark, offline.

data setup (IDX -> TFRecords) -> train (TF1 graph, checkpoint) -> ``sparktf export``
(checkpoint -> SavedModel with a signature) -> ``saved_model_cli show --all`` ->
``sparktf infer`` exactly as TensorFlowOnSpark's walk-through -> a few predictions and the
accuracy against the labels.

Usage: python examples/mnist/demo.py [--work demo-output]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BIN = Path(sys.executable).parent
SIGNATURES = {"serving_default": {"inputs": {"image": "x"},
                                  "outputs": {"prediction": "prediction"},
                                  "method_name": "predict"}}


def step(title: str, argv: list[str]) -> None:
    print(f"\n=== {title}\n$ {shlex.join(argv)}", flush=True)
    started = time.monotonic()
    subprocess.run(argv, check=True)
    print(f"--- {title}: {time.monotonic() - started:.1f} s", flush=True)


def accuracy(predictions: Path, labels_from: int) -> tuple[list[int], float]:
    """Predictions in input order (one part file per input file, rows in file order)."""
    sys.path.insert(0, str(HERE))
    from mnist_idx import IMAGES, LABELS, load_mnist

    predicted = []
    for part in sorted(glob.glob(str(predictions / "part-*.json"))):
        with open(part, encoding="utf-8") as handle:
            predicted += [json.loads(line)["prediction"] for line in handle]
    _, labels = load_mnist(IMAGES, LABELS)
    truth = labels[labels_from:].tolist()
    if len(truth) != len(predicted):
        raise SystemExit(f"expected {len(truth)} predictions, found {len(predicted)}")
    hits = sum(int(p == t) for p, t in zip(predicted, truth))
    return predicted, hits / len(truth)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / "demo-output")
    args = parser.parse_args()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    py, sparktf = str(sys.executable), str(BIN / "sparktf")
    started = time.monotonic()
    step("data setup: MNIST IDX -> TFRecords", [
        py, str(HERE / "mnist_data_setup.py"), "--output", str(work / "mnist/tfr"),
        "--format", "tfr", "--num_partitions", "2"])
    step("train a TF1 graph, save a checkpoint", [
        py, str(HERE / "mnist_train.py"), "--model_dir", str(work / "mnist_model")])
    step("export the checkpoint as a SavedModel", [
        sparktf, "export", "--model_dir", str(work / "mnist_model"),
        "--export_dir", str(work / "mnist_export"), "--signatures", json.dumps(SIGNATURES)])
    step("show the SavedModel", [str(BIN / "saved_model_cli"), "show", "--dir",
                                 str(work / "mnist_export"), "--all"])
    step("inference on Spark", [
        sparktf, "infer", "--export_dir", str(work / "mnist_export"),
        "--input", str(work / "mnist/tfr/test"),
        "--schema_hint", "struct<image:array<float>,label:array<float>>",
        "--input_mapping", '{"image": "x", "label": "y_"}',
        "--output_mapping", '{"prediction": "prediction", "Relu": "features"}',
        "--output", str(work / "predictions"), "--verbose"])
    predicted, acc = accuracy(work / "predictions", labels_from=8000)
    print(f"\nfirst predictions: {predicted[:10]}")
    print(f"accuracy on the 2,000 held-out digits: {acc:.2%}")
    print(f"demo finished in {time.monotonic() - started:.0f} s; outputs in {work}")
    return 0 if acc >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
