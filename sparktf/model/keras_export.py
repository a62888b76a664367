"""Keras 3 ``.keras`` files as SavedModels: loaded once with Keras, exported, cached.

A ``.keras`` file (``model.save("m.keras")``) holds a model's config and weights, not a graph:
sparktf loads it with Keras on the driver (or Spark Connect client), exports it to a
SavedModel with a ``serving_default`` signature whose input and output aliases are the
Keras model's own input and output names (Keras's ``model.export`` names outputs
``output_0``, ...), and scores that SavedModel like any other: workers need neither Keras nor
the model's custom classes (the exported graph holds their code).

The export is cached in ``<model cache>/converted/keras-<hash>`` (see
:mod:`sparktf.model.fetch`), keyed by the file's bytes (SHA-256) and the Keras and TensorFlow
versions: a second run with the same file converts nothing. A file given as a URL is
downloaded first. Written privately, checked, renamed into place under a lock.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import zipfile
from typing import Any

from sparktf import fs
from sparktf._tf import tensorflow
from sparktf.errors import ModelError
from sparktf.model.fetch import COMPLETE, converted_root, locked, prune

log = logging.getLogger(__name__)
SIGNATURE = "serving_default"


def is_keras_file(source: str) -> bool:
    """Whether ``source`` names a Keras 3 model file.

    Examples
    --------
    >>> is_keras_file("models/m.keras"), is_keras_file("s3://b/m.KERAS"), is_keras_file("m")
    (True, True, False)
    """
    return source.rstrip("/").lower().endswith(".keras")


def saved_model_of(source: str, *, name: str | None = None) -> str:
    """The SavedModel directory (this machine's cache) of the ``.keras`` file ``source``
    (a local path or URL); ``name`` names the model in messages (default ``source``)."""
    name = name or source
    with _local_file(source, name) as local:
        digest = _digest(local)
        target = os.path.join(converted_root(), f"keras-{digest[:24]}")
        with locked(f"{target}.lock"):
            if not os.path.exists(os.path.join(target, COMPLETE)):
                _convert(local, name, target)
                prune(converted_root(), current=os.path.basename(target))
            else:
                log.info("%s: the SavedModel exported before is reused (%s)", name, target)
                os.utime(target)  # most recently used
    return target


class _local_file:  # noqa: N801 - a context manager used like a function
    """The ``.keras`` file as a local path (a URL is downloaded to a scratch file)."""

    def __init__(self, source: str, name: str) -> None:
        self.source, self.name, self.scratch = source, name, None

    def __enter__(self) -> str:
        if not fs.is_remote(self.source):
            path = fs.local_path(self.source)
            if not os.path.isfile(path):
                what = "is a directory, not a .keras file" if os.path.isdir(path) else (
                    "does not exist")
                raise ModelError(f"Keras model file {self.name!r} {what}")
            return path
        self.scratch = tempfile.mkdtemp(prefix="sparktf-keras-")
        local = os.path.join(self.scratch, "model.keras")
        try:
            fs.download(self.source, local)
        except OSError as exc:
            raise ModelError(f"cannot fetch Keras model file {self.name!r}: {exc}") from None
        return local

    def __exit__(self, *exc: object) -> None:
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)


def _digest(path: str) -> str:
    tf = tensorflow()
    import keras

    digest = hashlib.sha256(f"{keras.__version__} {tf.__version__}\n".encode())
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _convert(local: str, name: str, target: str) -> None:
    """Load with Keras, export privately, then rename the export into place."""
    model = load(local, name)
    private = tempfile.mkdtemp(prefix=f".part-{os.getpid()}-", dir=os.path.dirname(target))
    try:
        export(model, os.path.join(private, "model"), name)
        with open(os.path.join(private, "model", COMPLETE), "w", encoding="utf-8") as handle:
            handle.write(name)
        if os.path.exists(target):  # an incomplete export left by a killed process
            shutil.rmtree(target)
        os.rename(os.path.join(private, "model"), target)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    log.info("%s: exported to SavedModel %s", name, target)


_MISSING_CLASS = re.compile(r"Could not locate (?:class|function) '([^']+)'")
_CONFIG_MODULE = re.compile(r"'module': '([^']+)'")
_CONFIG_REGISTERED = re.compile(r"'registered_name': '([^']+)'")


def load(path: str, name: str) -> Any:
    """The Keras model in ``path``, or a :class:`ModelError` saying why not."""
    tensorflow()  # quietly, before Keras imports it
    import keras

    if not zipfile.is_zipfile(path):
        raise ModelError(f"{name!r} is not a Keras model file: a .keras file is a zip archive, "
                         "and this one is not (corrupt or truncated?)")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises TypeError, ValueError, ...
        text = " ".join(str(exc).split())
        missing = _MISSING_CLASS.search(text)
        if missing:
            config = text[missing.end():]
            module = _CONFIG_MODULE.search(config)
            registered = _CONFIG_REGISTERED.search(config)
            where = module.group(1) if module else "MODULE"
            known_as = f" (registered as {registered.group(1)!r}, from module {where!r})" if (
                registered and module) else ""
            raise ModelError(
                f"cannot load Keras model {name!r}: its custom class {missing.group(1)!r}"
                f"{known_as} is not known in this process; import the module that defines it "
                "(decorated with @keras.saving.register_keras_serializable()) before "
                f"loading: in Python, import it first; with sparktf infer or inspect, pass "
                f"--import {where} (a module on PYTHONPATH)") from None
        raise ModelError(f"cannot load Keras model {name!r}: {text[:500]}") from None


def export(model: Any, out: str, name: str) -> None:
    """Write ``model`` as a SavedModel whose ``serving_default`` signature names inputs and
    outputs as the Keras model does."""
    tf = tensorflow()
    import keras

    structure = input_structure(model)
    specs = keras.tree.map_structure(
        lambda t: tf.TensorSpec(t.shape, t.dtype, name=_input_name(t)), structure)
    outputs = output_names(model)

    def serve(inputs: Any) -> dict[str, Any]:
        found = model(inputs, training=False)
        if isinstance(found, dict):
            return dict(found)
        flat = list(found) if isinstance(found, (list, tuple)) else [found]
        return dict(zip(outputs, flat, strict=True))

    archive = keras.export.ExportArchive()
    archive.track(model)
    try:
        archive.add_endpoint(name=SIGNATURE, fn=serve, input_signature=[specs])
        archive.write_out(out, verbose=False)
    except Exception as exc:  # noqa: BLE001 - tracing a user's model can fail many ways
        raise ModelError(f"cannot export Keras model {name!r} to a SavedModel: "
                         f"{' '.join(str(exc).split())[:500]}") from None


def input_structure(model: Any) -> Any:
    """The model's inputs as it is called with them: a functional model's own structure
    (a dict of named inputs, a list), else its one input or list of inputs (a loaded
    Sequential model has ``inputs`` but no ``input``)."""
    try:
        return model.input
    except (AttributeError, ValueError):
        inputs = list(model.inputs or [])
        if not inputs:
            raise ModelError(f"Keras model {model.name!r} has no defined inputs (build it "
                             "with keras.Input before saving)") from None
        return inputs[0] if len(inputs) == 1 else inputs


def _input_name(tensor: Any) -> str:
    return str(getattr(tensor, "name", "") or "input").split(":")[0]


def output_names(model: Any) -> list[str]:
    """The names Keras gives the outputs: a functional model's ``output_names``, else the
    last layer's name (one output) or ``output_<i>``."""
    names = getattr(model, "output_names", None)
    outputs = model.outputs if isinstance(model.outputs, list) else [model.outputs]
    if names and len(names) == len(outputs):
        return [str(n) for n in names]
    if len(outputs) == 1 and model.layers:
        return [model.layers[-1].name]
    return [f"output_{i}" for i in range(len(outputs))]
