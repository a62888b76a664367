"""Keras 3 models built by the tests (no download), and a custom layer registered with
``keras.saving.register_keras_serializable`` (importing this module registers it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sparktf._tf import tensorflow

tensorflow()  # quietly, before Keras imports it
import keras  # noqa: E402


@keras.saving.register_keras_serializable(package="sparktf_tests")
class Scale(keras.layers.Layer):
    """``x * factor``: a custom layer whose class must be known to load the model."""

    def __init__(self, factor: float = 2.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs: Any) -> Any:
        return inputs * self.factor

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor}


def functional(seed: int = 1) -> Any:
    """Named inputs ``image`` (784) and ``bias`` (1); outputs ``probs`` (10) and ``score``."""
    keras.utils.set_random_seed(seed)
    image = keras.Input(shape=(784,), name="image")
    bias = keras.Input(shape=(1,), name="bias")
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(image)
    probs = keras.layers.Dense(10, activation="softmax", name="probs")(hidden)
    score = keras.layers.Add(name="score")([keras.layers.Dense(1, name="raw")(hidden), bias])
    return keras.Model(inputs={"image": image, "bias": bias},
                       outputs={"probs": probs, "score": score})


def sequential(seed: int = 2) -> Any:
    """One input ``pixels`` (784), one output named after its last layer, ``logits``."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input(shape=(784,), name="pixels"),
                             keras.layers.Dense(8, activation="tanh"),
                             keras.layers.Dense(3, name="logits")])


def custom(seed: int = 3) -> Any:
    """A functional model with the custom layer :class:`Scale`."""
    keras.utils.set_random_seed(seed)
    x = keras.Input(shape=(4,), name="x")
    return keras.Model(x, Scale(3.0, name="scaled")(keras.layers.Dense(2, name="d")(x)))


def save(model: Any, path: Path) -> Path:
    model.save(str(path))
    return path


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 784), dtype=np.float32)
