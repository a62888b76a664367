"""MLflow model URIs (``models:/name/3``, ``models:/name@champion``, ``models:/<model_id>``,
``runs:/<run_id>/model``, ``mlflow-artifacts:/...``) as SavedModels.

Resolved on the driver (or Spark Connect client) through MLflow's own client, with the
user's tracking settings (``MLFLOW_TRACKING_URI``, ``mlflow.set_tracking_uri``; the model
registry's from ``MLFLOW_REGISTRY_URI`` or the tracking URI): the model's ``MLmodel`` file is
read first, then its files are downloaded once into ``<model cache>/converted/mlflow-<id>``
(keyed by the model's ``model_uuid``: an alias that moves to another version gets its own
copy) and turned into a SavedModel by flavor:

- ``tensorflow`` flavor: a SavedModel directory (``saved_model_dir``, e.g. ``tf2model``) is
  used as it is; a Keras model it holds (``data/model.keras``) is exported
  (:mod:`sparktf.model.keras_export`);
- ``keras`` flavor: ``data/model.keras``, exported; or the SavedModel it saved itself
  (``save_exported_model``).

Any other flavor is refused with the URI and the flavors the model has. ``mlflow`` is an
optional package (``pip install 'sparktf[mlflow]'``), imported only here.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from typing import Any

from sparktf.errors import ModelError
from sparktf.model.fetch import COMPLETE, converted_root, locked, prune

log = logging.getLogger(__name__)
SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/")
FLAVORS = ("tensorflow", "keras")


def is_mlflow_uri(source: str) -> bool:
    """Whether ``source`` is an MLflow model URI.

    Examples
    --------
    >>> is_mlflow_uri("models:/mnist@champion"), is_mlflow_uri("runs:/abc/model")
    (True, True)
    >>> is_mlflow_uri("s3://bucket/model")
    False
    """
    return source.startswith(SCHEMES)


def redacted(uri: str) -> str:
    """A tracking URI fit for a message: no user, password or token.

    Examples
    --------
    >>> redacted("https://alice:s3cret@mlflow.example.com/api?token=abc")
    'https://***@mlflow.example.com/api'
    """
    text = re.sub(r"//[^/@]*@", "//***@", uri)
    return text.split("?", 1)[0]


def _mlflow(uri: str) -> Any:
    try:
        import mlflow
    except ImportError:
        raise ModelError(f"{uri}: an MLflow model URI needs the mlflow package: "
                         "pip install 'sparktf[mlflow]'") from None
    return mlflow


def saved_model_of(uri: str) -> str:
    """The SavedModel directory (this machine's cache) of the MLflow model ``uri``."""
    mlflow = _mlflow(uri)
    from sparktf._tf import tensorflow

    tensorflow()  # quietly, before MLflow's flavors import it
    info = _model_info(mlflow, uri)
    flavors = dict(info.flavors or {})
    flavor = next((f for f in FLAVORS if f in flavors), None)
    if flavor is None:
        raise ModelError(f"{uri}: an MLflow model of flavor(s) "
                         f"{', '.join(sorted(flavors)) or 'none'}; sparktf scores the "
                         f"{' and '.join(FLAVORS)} flavors")
    key = hashlib.sha256(f"{info.model_uuid or uri}".encode()).hexdigest()[:24]
    target = os.path.join(converted_root(), f"mlflow-{key}")
    with locked(f"{target}.lock"):
        if os.path.exists(os.path.join(target, COMPLETE)):
            log.info("%s: the SavedModel made before is reused (%s)", uri, target)
            os.utime(target)  # most recently used
            return target
        private = tempfile.mkdtemp(prefix=f".part-{os.getpid()}-", dir=converted_root())
        try:
            local = _download(mlflow, uri, private)
            made = _saved_model(local, flavor, flavors[flavor], uri, private)
            with open(os.path.join(made, COMPLETE), "w", encoding="utf-8") as handle:
                handle.write(uri)
            if os.path.exists(target):
                shutil.rmtree(target)
            os.rename(made, target)
        finally:
            shutil.rmtree(private, ignore_errors=True)
    prune(converted_root(), current=os.path.basename(target))
    return target


def _model_info(mlflow: Any, uri: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.models.get_model_info(uri)
    except (MlflowException, OSError) as exc:
        first = " ".join(str(getattr(exc, "message", exc)).split())[:400]
        raise ModelError(f"{uri}: cannot resolve this MLflow model ({first}); tracking URI "
                         f"{redacted(mlflow.get_tracking_uri())}") from None


def _download(mlflow: Any, uri: str, into: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        return mlflow.artifacts.download_artifacts(artifact_uri=uri,
                                                   dst_path=os.path.join(into, "download"))
    except (MlflowException, OSError) as exc:
        first = " ".join(str(getattr(exc, "message", exc)).split())[:400]
        raise ModelError(f"{uri}: cannot download the MLflow model ({first}); tracking URI "
                         f"{redacted(mlflow.get_tracking_uri())}") from None


def _saved_model(local: str, flavor: str, conf: dict[str, Any], uri: str, into: str) -> str:
    """A SavedModel directory inside ``into`` made from the downloaded model ``local``."""
    from sparktf.model import keras_export

    saved = conf.get("saved_model_dir")
    if flavor == "keras" and conf.get("save_exported_model"):
        saved = os.path.join(conf.get("data", "data"), "model")
    if saved:
        path = os.path.join(local, saved)
        if not os.path.isdir(path):
            raise ModelError(f"{uri}: the {flavor} flavor names {saved!r}, which the "
                             "downloaded model does not hold")
        return path
    keras_file = _keras_file(local, conf)
    if keras_file is None:
        raise ModelError(f"{uri}: its {flavor} flavor holds neither a SavedModel directory "
                         "nor a .keras file")
    out = os.path.join(into, "export")
    keras_export.export(keras_export.load(keras_file, uri), out, uri)
    return out


def _keras_file(local: str, conf: dict[str, Any]) -> str | None:
    data = os.path.join(local, str(conf.get("data", "data")))
    for candidate in (os.path.join(data, "model.keras"), data):
        if os.path.isfile(candidate) and candidate.endswith(".keras"):
            return candidate
    found = [os.path.join(root, n) for root, _, names in os.walk(local) for n in names
             if n.endswith(".keras")]
    return found[0] if len(found) == 1 else None
