"""Builders of small SavedModels for the tests, and plain-TensorFlow references.

- :func:`build_mnist`: a TF1 graph MNIST-style model (``x`` [None, 784], ``y_`` [None, 10],
  hidden ``Relu`` 784 -> 128, ``prediction`` = argmax of the logits), seeded weights, and a
  ``serving_default`` signature ``img`` -> ``x``, ``pred`` -> ``prediction``;
- :func:`build_tf2`: a ``tf.saved_model.save`` module whose aliases differ from its tensors;
- :func:`build_nobatch`: outputs without a batch dimension;
- :func:`build_types`: identity-like outputs of many dtypes and ranks;
- :func:`build_keras`: a Keras ``model.export`` SavedModel;
- :class:`Checkpoint`: a tiny TF1 checkpoint (not a SavedModel) with known weights;
- :func:`build_rowsum`: a TF1 graph with ``x`` [None, width], ``total`` (sum per row) and
  ``doubled`` (``x * 2``), no variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sparktf._tf import tensorflow


def mnist_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """The seeded weights of :func:`build_mnist`."""
    rng = np.random.RandomState(seed)
    return {
        "W1": rng.normal(0, 0.1, (784, 128)).astype(np.float32),
        "b1": rng.normal(0, 0.1, (128,)).astype(np.float32),
        "W2": rng.normal(0, 0.1, (128, 10)).astype(np.float32),
        "b2": rng.normal(0, 0.1, (10,)).astype(np.float32),
    }


def _save_tf1(export_dir: Path, graph: Any, signatures: dict[str, Any]) -> None:
    tf = tensorflow()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        builder = tf.compat.v1.saved_model.Builder(str(export_dir))
        builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map=signatures)
        builder.save()


def build_mnist(export_dir: Path, *, seed: int = 0,
                aliases: tuple[str, str] = ("img", "pred")) -> Path:
    """Write the TF1 MNIST-style SavedModel to ``export_dir``; ``aliases`` name the
    signature's input and output."""
    tf = tensorflow()
    v1 = tf.compat.v1
    w = mnist_weights(seed)
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 784], name="x")
        y_ = v1.placeholder(tf.float32, [None, 10], name="y_")
        hidden = tf.nn.relu(tf.matmul(x, v1.Variable(w["W1"], name="W1"))
                            + v1.Variable(w["b1"], name="b1"), name="Relu")
        logits = tf.add(tf.matmul(hidden, v1.Variable(w["W2"], name="W2")),
                        v1.Variable(w["b2"], name="b2"), name="logits")
        prediction = tf.argmax(logits, 1, name="prediction")
        tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y_, logits=logits),
                       name="loss")
        signature = v1.saved_model.predict_signature_def(
            inputs={aliases[0]: x}, outputs={aliases[1]: prediction})
    _save_tf1(export_dir, graph, {"serving_default": signature})
    return export_dir


def mnist_numpy(images: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(prediction, Relu)`` of :func:`build_mnist` computed with numpy."""
    w = mnist_weights(seed)
    hidden = np.maximum(images.astype(np.float32) @ w["W1"] + w["b1"], 0)
    return np.argmax(hidden @ w["W2"] + w["b2"], axis=1), hidden


def run_plain(export_dir: Path, feeds: dict[str, np.ndarray], fetches: list[str]) -> list:
    """Run a SavedModel with a plain TF1 session (the reference for TFModel's results)."""
    tf = tensorflow()
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        tf.compat.v1.saved_model.loader.load(sess, ["serve"], str(export_dir))
        return sess.run(fetches, feed_dict=feeds)


def build_tf2(export_dir: Path) -> Path:
    """A TF2 ``tf.saved_model.save`` model: input alias ``img``, outputs ``scores``/``label``.

    ``scores = img @ W`` with ``W = arange(12).reshape(4, 3) / 10`` and ``label`` its argmax.
    Tensor names differ from aliases (``serving_default_img:0``,
    ``StatefulPartitionedCall:0``).
    """
    tf = tensorflow()

    class Scorer(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(np.arange(12, dtype=np.float32).reshape(4, 3) / 10)

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="img")])
        def serve(self, img: Any) -> dict[str, Any]:
            scores = tf.matmul(img, self.w)
            return {"scores": scores, "label": tf.argmax(scores, 1)}

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="pixels")])
        def total(self, pixels: Any) -> dict[str, Any]:
            return {"sum": tf.reduce_sum(pixels, axis=1)}

    module = Scorer()
    tf.saved_model.save(module, str(export_dir),
                        signatures={"serving_default": module.serve, "sums": module.total})
    return export_dir


def build_nobatch(export_dir: Path) -> Path:
    """A TF1 model with ``x`` [None, 4]; ``total`` (sum over the batch, shape [4]),
    ``flat`` (reshape to [-1]: [None] but 4 values per row), ``scaled`` (x * 2)."""
    tf = tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        tf.reduce_sum(x, axis=0, name="total")
        tf.reshape(x, [-1], name="flat")
        tf.multiply(x, 2.0, name="scaled")
        tf.constant([1, 2, 3], name="const")
    _save_tf1(export_dir, graph, {})
    return export_dir


TYPE_INPUTS: dict[str, tuple[str, list[int | None]]] = {
    "f64": ("float64", [None]), "f16": ("float16", [None, 2]), "i8": ("int8", [None]),
    "i16": ("int16", [None]), "u8": ("uint8", [None]), "i32": ("int32", [None]),
    "i64": ("int64", [None]), "b": ("bool", [None]), "s": ("string", [None]),
    "img": ("float32", [None, 2, 2, 1]), "seq": ("float32", [None, None]),
}


def build_types(export_dir: Path) -> Path:
    """A TF1 model with one placeholder per :data:`TYPE_INPUTS` entry and an identity
    output ``<name>_out`` for each, plus ``s_len`` (string lengths), ``img_sum`` and
    ``seq_sum`` (sums per row)."""
    tf = tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        holders = {}
        for name, (dtype, shape) in TYPE_INPUTS.items():
            holders[name] = tf.compat.v1.placeholder(tf.as_dtype(dtype), shape, name=name)
            tf.identity(holders[name], name=f"{name}_out")
        tf.strings.length(holders["s"], name="s_len")
        tf.reduce_sum(holders["img"], axis=[1, 2, 3], name="img_sum")
        tf.reduce_sum(holders["seq"], axis=1, name="seq_sum")
    _save_tf1(export_dir, graph, {})
    return export_dir


def build_keras(export_dir: Path) -> Path:
    """A Keras ``model.export`` SavedModel: input alias ``feat`` [None, 4], ``output_0``."""
    tf = tensorflow()
    inp = tf.keras.Input((4,), name="feat")
    dense = tf.keras.layers.Dense(2, name="dense_out", kernel_initializer="ones")
    model = tf.keras.Model(inp, dense(inp))
    model.export(str(export_dir), verbose=False)
    return export_dir


def build_rowsum(export_dir: Path, *, width: int = 16) -> Path:
    """A TF1 model with ``x`` [None, ``width``] float32; ``total`` (``x`` summed per row,
    shape [None]) and ``doubled`` (``x * 2``). Tiny and exact where the sums are."""
    tf = tensorflow()
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, width], name="x")
        tf.reduce_sum(x, axis=1, name="total")
        tf.multiply(x, 2.0, name="doubled")
    _save_tf1(export_dir, graph, {})
    return export_dir


class Checkpoint:
    """A tiny TF1 graph (x -> Relu -> logits -> prediction) saved with known weights."""

    def __init__(self, model_dir: Path) -> None:
        rng = np.random.default_rng(7)
        self.dir = model_dir
        self.w1 = rng.normal(size=(4, 3)).astype(np.float32)
        self.b1 = rng.normal(size=3).astype(np.float32)
        self.w2 = rng.normal(size=(3, 2)).astype(np.float32)
        self.x = rng.normal(size=(6, 4)).astype(np.float32)
        self._save()

    def _save(self) -> None:
        tf = tensorflow()
        v1 = tf.compat.v1
        with tf.Graph().as_default(), v1.Session() as sess:
            x = v1.placeholder(tf.float32, [None, 4], name="x")
            v1.placeholder(tf.float32, [None, 2], name="y_")
            w1 = tf.Variable(tf.zeros([4, 3]), name="hid_w")
            b1 = tf.Variable(tf.zeros([3]), name="hid_b")
            w2 = tf.Variable(tf.zeros([3, 2]), name="sm_w")
            hidden = tf.nn.relu(tf.matmul(x, w1) + b1, name="Relu")
            logits = tf.matmul(hidden, w2, name="logits")
            tf.argmax(logits, 1, name="prediction")
            sess.run(v1.global_variables_initializer())
            # Saved weights differ from the initial zeros: an export must restore them.
            sess.run([v1.assign(w1, self.w1), v1.assign(b1, self.b1), v1.assign(w2, self.w2)])
            v1.train.Saver().save(sess, str(self.dir / "model.ckpt"), global_step=7)

    def hidden(self) -> np.ndarray:
        return np.maximum(self.x @ self.w1 + self.b1, 0)

    def logits(self) -> np.ndarray:
        return self.hidden() @ self.w2
