"""Spark ML stages: :class:`TFModel` scores a DataFrame with a TensorFlow SavedModel."""

from sparktf.ml.tfmodel import TFModel

__all__ = ["TFModel"]
