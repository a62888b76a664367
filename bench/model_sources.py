"""Keras ``.keras`` files as models (issue 23): what converting costs, and that a second run
converts nothing.

Whole processes of ``sparktf inspect --export_dir model.keras`` (the conversion happens in the
driver, as for ``sparktf infer`` and TFModel), alternating: with an empty model cache (load
with Keras, export a SavedModel) and with the cache the previous run left (the file's hash,
then the cached SavedModel). The model: an MNIST-sized functional Keras model (784 -> 128
relu -> 10 softmax), built here.

Usage: python bench/model_sources.py [--rounds N] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def build(path: Path) -> Path:
    sys.path.insert(0, str(ROOT))
    from sparktf._tf import tensorflow

    tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input(shape=(784,), name="image")
    hidden = keras.layers.Dense(128, activation="relu", name="hidden")(image)
    keras.Model(image, keras.layers.Dense(10, activation="softmax", name="probs")(hidden)).save(
        str(path))
    return path


def run(work: Path, rounds: int) -> dict[str, object]:
    model = build(work / "mnist.keras")
    cache = work / "keras-cache"
    env = {**os.environ, "SPARKTF_MODEL_CACHE_DIR": str(cache)}
    times: dict[str, list[float]] = {"convert": [], "cached": []}
    for _ in range(rounds):
        shutil.rmtree(cache, ignore_errors=True)
        for kind in ("convert", "cached"):
            start = time.perf_counter()
            done = subprocess.run([str(BIN / "sparktf"), "inspect", "--export_dir", str(model)],
                                  env=env, capture_output=True, text=True, check=True)
            times[kind].append(round(time.perf_counter() - start, 2))
            assert "probs -> " in done.stdout
    found: dict[str, object] = {f"whole process, {kind}": {"median_s": statistics.median(t),
                                                           "runs": t}
                                for kind, t in times.items()}
    from sparktf.model.sources import resolve  # in this process, TensorFlow imported

    inside: dict[str, list[float]] = {"convert": [], "cached": []}
    for round_ in range(rounds):
        os.environ["SPARKTF_MODEL_CACHE_DIR"] = str(work / f"keras-cache-{round_}")
        for kind in ("convert", "cached"):
            start = time.perf_counter()
            resolve(str(model))
            inside[kind].append(round(time.perf_counter() - start, 3))
    found.update({f"resolve() in one process, {kind}": {"median_s": statistics.median(t),
                                                        "runs": t}
                  for kind, t in inside.items()})
    return found


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / "output")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(json.dumps(run(args.work, args.rounds), indent=1))
