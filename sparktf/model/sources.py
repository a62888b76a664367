"""Where models come from: the one place a model source becomes a SavedModel to score.

Every entry point that takes a model (``TFModel(exportDir=...)``, ``sparktf infer
--export_dir``, ``sparktf inspect --export_dir``) hands the string to :func:`resolve`, on the
driver (or Spark Connect client), as MLflow's ``pyfunc`` loaders do: fetch, read the
metadata, dispatch by kind:

================================  ==========================================================
source                            becomes
================================  ==========================================================
a SavedModel directory or URL     itself (each host copies a URL once:
                                  :mod:`sparktf.model.fetch`)
``*.keras`` (a path or URL)       a SavedModel exported with Keras, cached by the file's
                                  bytes (:mod:`sparktf.model.keras_export`)
``models:/``, ``runs:/``,         the model's SavedModel (``tensorflow`` flavor) or its Keras
``mlflow-artifacts:/``            model exported (``tensorflow``, ``keras`` flavors), cached by
                                  its id (:mod:`sparktf.model.mlflow_source`)
================================  ==========================================================

A SavedModel made on this machine exists only here: TFModel ships it to the executors
(unless they run on this host, under a ``local`` master). Messages name the source as given.

Examples
--------
>>> resolve("mnist_export")
ModelSource(given='mnist_export', location='mnist_export', kind='SavedModel', made_here=False)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sparktf.model import keras_export, mlflow_source


@dataclass(frozen=True)
class ModelSource:
    """A model as the user named it (``given``), the SavedModel directory or URL that stands
    for it (``location``), what it was, and whether that SavedModel was made on this
    machine (then only this machine has it)."""

    given: str
    location: str
    kind: str
    made_here: bool = False

    def describe(self) -> str:
        """``SavedModel: path``, or ``Keras model m.keras (exported to SavedModel ...)``."""
        if not self.made_here:
            return f"SavedModel: {self.given}"
        return f"{self.kind}: {self.given} (as SavedModel {self.location})"


def resolve(source: str | os.PathLike[str]) -> ModelSource:
    """The SavedModel that scores ``source`` (see the module docstring).

    Raises
    ------
    ModelError
        When the source cannot be fetched, loaded, converted or found, naming it.
    """
    given = os.fspath(source)
    if mlflow_source.is_mlflow_uri(given):
        return ModelSource(given, mlflow_source.saved_model_of(given), "MLflow model", True)
    if keras_export.is_keras_file(given):
        return ModelSource(given, keras_export.saved_model_of(given), "Keras model", True)
    return ModelSource(given, given, "SavedModel")
