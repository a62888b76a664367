"""Train a small TF1-style MNIST classifier and save a checkpoint for ``sparktf export``.

The graph names the tensors the walk-through maps: placeholders ``x`` (float32 [None, 784],
pixels 0-1) and ``y_`` (float32 [None, 10], one-hot labels), the hidden layer ``Relu``
(128 units) and ``prediction`` (the arg-max digit). It trains on the first 8,000 digits,
reports the accuracy on the last 2,000, and saves a ``tf.compat.v1.train.Saver``
checkpoint (with its meta graph) in ``--model_dir``.

Examples
--------
    python examples/mnist/mnist_train.py --model_dir mnist_model --epochs 5
    sparktf export --model_dir mnist_model --show
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mnist_idx import IMAGES, LABELS, load_mnist, to_features

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
log = logging.getLogger("mnist_train")

TRAIN_SIZE = 8000
BATCH_SIZE = 50
LEARNING_RATE = 0.003


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` did: the accuracy on held-out digits and the checkpoint saved."""

    accuracy: float
    checkpoint: str
    steps: int


def build_graph(tf: Any, *, seed: int, hidden: int = 128) -> dict[str, Any]:
    """Build the classifier in the current default graph; returns its named tensors."""
    tf.compat.v1.set_random_seed(seed)
    x = tf.compat.v1.placeholder(tf.float32, [None, 784], name="x")
    y_ = tf.compat.v1.placeholder(tf.float32, [None, 10], name="y_")
    w1 = tf.Variable(tf.random.truncated_normal([784, hidden], stddev=0.05), name="hid_w")
    b1 = tf.Variable(tf.zeros([hidden]), name="hid_b")
    hid = tf.nn.relu(tf.matmul(x, w1) + b1, name="Relu")
    w2 = tf.Variable(tf.random.truncated_normal([hidden, 10], stddev=0.05), name="sm_w")
    b2 = tf.Variable(tf.zeros([10]), name="sm_b")
    logits = tf.add(tf.matmul(hid, w2), b2, name="logits")
    loss = tf.reduce_mean(
        tf.nn.softmax_cross_entropy_with_logits(labels=y_, logits=logits), name="loss"
    )
    step = tf.compat.v1.train.get_or_create_global_step()
    train_op = tf.compat.v1.train.AdamOptimizer(LEARNING_RATE).minimize(loss, global_step=step)
    prediction = tf.argmax(logits, 1, name="prediction")
    label = tf.argmax(y_, 1, name="label")
    accuracy = tf.reduce_mean(tf.cast(tf.equal(prediction, label), tf.float32), name="accuracy")
    return {"x": x, "y_": y_, "train_op": train_op, "accuracy": accuracy, "step": step}


def train(
    images: np.ndarray,
    labels: np.ndarray,
    model_dir: str | Path,
    *,
    epochs: int = 3,
    seed: int = 0,
    train_size: int = TRAIN_SIZE,
) -> TrainResult:
    """Train on ``images[:train_size]``, evaluate on the rest, save a checkpoint.

    Parameters
    ----------
    images, labels : numpy.ndarray
        ``n x 28 x 28`` uint8 pixels and ``n`` digits, as :func:`mnist_idx.load_mnist` returns.
    model_dir : str or Path
        Where the checkpoint (``model.ckpt-STEP.*`` and ``checkpoint``) is written.
    epochs, seed : int
        Passes over the training digits; seed of the initial weights and of the shuffling.

    Examples
    --------
    >>> result = train(*load_mnist(), "mnist_model", epochs=3)  # doctest: +SKIP
    >>> result.accuracy > 0.9  # doctest: +SKIP
    True
    """
    import tensorflow as tf  # here, so that --help answers at once

    if not 0 < train_size < len(images):
        raise ValueError(f"train_size must be in 1..{len(images) - 1}, found {train_size}")
    x_all, y_all = to_features(images, labels)
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        t = build_graph(tf, seed=seed)
        saver = tf.compat.v1.train.Saver(max_to_keep=1, save_relative_paths=True)
        with tf.compat.v1.Session(graph=graph, config=_session_config(tf)) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            for epoch in range(epochs):
                order = rng.permutation(train_size)
                for start in range(0, train_size, BATCH_SIZE):
                    idx = order[start : start + BATCH_SIZE]
                    sess.run(t["train_op"], {t["x"]: x_all[idx], t["y_"]: y_all[idx]})
                log.info("epoch %d done", epoch + 1)
            feed = {t["x"]: x_all[train_size:], t["y_"]: y_all[train_size:]}
            accuracy, steps = sess.run([t["accuracy"], t["step"]], feed)
            Path(model_dir).mkdir(parents=True, exist_ok=True)
            prefix = saver.save(sess, str(Path(model_dir) / "model.ckpt"), global_step=t["step"])
    return TrainResult(accuracy=float(accuracy), checkpoint=prefix, steps=int(steps))


def _session_config(tf: Any) -> Any:
    """Single-threaded ops, so that a seed gives the same weights on every machine."""
    return tf.compat.v1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train the MNIST TF1 graph (x, y_, Relu, prediction) and save a checkpoint.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python examples/mnist/mnist_train.py --model_dir mnist_model\n",
    )
    parser.add_argument("--images", default=str(IMAGES), help="IDX images (.gz ok)")
    parser.add_argument("--labels", default=str(LABELS), help="IDX labels (.gz ok)")
    parser.add_argument("--model_dir", default="mnist_model", help="checkpoint directory")
    parser.add_argument("--epochs", type=int, default=5, help="passes over the training set")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights and shuffling")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    log.setLevel(logging.INFO)
    started = time.monotonic()
    try:
        images, labels = load_mnist(args.images, args.labels)
        result = train(images, labels, args.model_dir, epochs=args.epochs, seed=args.seed)
    except ValueError as exc:  # IDXError included
        print(f"mnist_train: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"accuracy on the {len(images) - TRAIN_SIZE} held-out digits: {result.accuracy:.4f} "
        f"({result.steps} steps, {time.monotonic() - started:.1f} s); "
        f"checkpoint: {result.checkpoint}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
