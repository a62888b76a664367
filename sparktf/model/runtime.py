"""Run a SavedModel over Arrow batches, inside Spark's Python workers.

Each worker process loads a model once (TF1 loader, one graph and ``Session``) and keeps it
in a small cache keyed by the directory's real path, the tag set and a fingerprint of its
files, so a rewritten model directory is loaded again. One batch runs through a callable
made once per (feeds, fetches) with ``Session.make_callable``.

Threads: ``SPARKTF_INTRA_OP_THREADS`` and ``SPARKTF_INTER_OP_THREADS`` (environment of the
workers, e.g. ``spark.executorEnv.SPARKTF_INTRA_OP_THREADS``) set TensorFlow's thread pools;
by default TensorFlow chooses. ``SPARKTF_MODEL_CACHE_SIZE`` (default 2) bounds how many
models one worker keeps. A task that holds GPUs (Spark's resource scheduling) has the model
placed on its GPU (:func:`task_gpus`).

Examples
--------
>>> import pyarrow as pa
>>> plan = Plan(export_dir=mnist_export, tags=("serve",),
...             feeds=(Feed("image", "x:0", "float32", (None, 784)),),
...             fetches=(Fetch("prediction:0", "prediction", "int64", (None,)),))
>>> batch = pa.record_batch([pa.array([[0.5] * 784] * 3, pa.list_(pa.float32()))], ["image"])
>>> [b.num_rows for b in map_batches(iter([batch]), plan=plan)]
[3]
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from sparktf import fs
from sparktf._tf import freeze_survivors, tensorflow
from sparktf.errors import ModelError, this_host
from sparktf.model.convert import Shape, check_batch_dim, to_arrow, to_tensor
from sparktf.model.metadata import fingerprint, saved_model_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Feed:
    """A column fed to a graph tensor of a known dtype and static shape."""

    column: str
    tensor: str
    dtype: str
    shape: Shape


@dataclass(frozen=True)
class Fetch:
    """A graph tensor fetched into an output column."""

    tensor: str
    column: str
    dtype: str
    shape: Shape


@dataclass(frozen=True)
class Plan:
    """Everything a worker needs to score batches; built and validated on the driver."""

    export_dir: str
    tags: tuple[str, ...]
    feeds: tuple[Feed, ...]
    fetches: tuple[Fetch, ...]
    passthrough: tuple[str, ...] = ()
    batch_size: int = 1024
    archive: str | None = None  #: SparkFiles name of a shipped copy of the model
    name: str | None = None  #: the model as the user named it, for messages


def _env_int(name: str) -> int:
    value = os.environ.get(name, "0").strip() or "0"
    try:
        return max(0, int(value))
    except ValueError:
        log.warning("ignoring %s=%r: not an integer", name, value)
        return 0


def session_config() -> Any:
    """The ``ConfigProto`` of worker sessions (threads from the environment, GPU growth on)."""
    tf = tensorflow()
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=_env_int("SPARKTF_INTRA_OP_THREADS"),
        inter_op_parallelism_threads=_env_int("SPARKTF_INTER_OP_THREADS"),
        allow_soft_placement=True,
    )
    config.gpu_options.allow_growth = True
    return config


def task_gpus() -> tuple[str, ...]:
    """The GPU addresses Spark gave the running task (``spark.task.resource.gpu.amount``),
    ``()`` outside a task or without GPU resources: the one place sparktf chooses a device.

    The addresses are those the executor's discovery script reported (``nvidia-smi``'s
    indices, for Spark's ``getGpusResources.sh``); with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``
    (set by :mod:`sparktf._tf` unless given) TensorFlow numbers GPUs the same way. Every GPU
    stays visible to the worker process (CUDA's view is fixed when a process first uses it,
    and Spark reuses a worker for tasks that hold other GPUs); the model is placed on the
    task's GPU instead, and a worker keeps one loaded copy per (model, GPU).
    """
    from pyspark import TaskContext

    context = TaskContext.get()
    found = context.resources().get("gpu") if context is not None else None
    return tuple(found.addresses) if found is not None else ()


#: One line per model load on a GPU, to the executor's log (the worker's stderr).
placement = logging.getLogger("sparktf.placement")


def _announce(message: str) -> None:
    if not placement.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("sparktf: %(message)s"))
        placement.addHandler(handler)
        placement.setLevel(logging.INFO)
        placement.propagate = False
    placement.info(message)


class LoadedModel:
    """A SavedModel loaded into its own graph and session, with cached batch callables;
    placed on the GPU of address ``gpu`` when one is given."""

    def __init__(self, export_dir: str, tags: Sequence[str], name: str | None = None,
                 gpu: str | None = None) -> None:
        tf = tensorflow()
        saved_model_file(export_dir)
        self.export_dir = name or export_dir  # as the user gave it (a URL), for messages
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph, config=session_config())
        self._callables: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = {}
        self._lock = threading.Lock()
        quiet = logging.getLogger("tensorflow")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        device = f"/device:GPU:{gpu}" if gpu is not None else None
        try:
            with self.graph.as_default(), tf.device(device):
                tf.compat.v1.saved_model.loader.load(self.session, list(tags), export_dir,
                                                     clear_devices=device is not None)
        except Exception as exc:  # noqa: BLE001 - TensorFlow raises many kinds here
            self.session.close()
            raise ModelError(f"cannot load SavedModel {self.export_dir!r} "
                             f"(tag set {','.join(tags)!r}): {exc}") from None
        finally:
            quiet.setLevel(level)

    def callable(self, feeds: Sequence[str], fetches: Sequence[str]) -> Any:
        """A fast ``fn(*arrays) -> list[ndarray]`` feeding ``feeds`` and fetching ``fetches``."""
        key = (tuple(feeds), tuple(fetches))
        with self._lock:
            fn = self._callables.get(key)
            if fn is None:
                graph = self.graph
                fn = self.session.make_callable(
                    [graph.get_tensor_by_name(n) for n in fetches],
                    feed_list=[graph.get_tensor_by_name(n) for n in feeds],
                )
                self._callables[key] = fn
        return fn

    def run(self, feeds: Sequence[str], fetches: Sequence[str],
            arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run one batch; TensorFlow errors become a :class:`ModelError` naming the tensors."""
        fn = self.callable(feeds, fetches)
        try:
            return list(fn(*arrays))
        except Exception as exc:  # noqa: BLE001 - tf.errors.* and numpy errors
            first = str(getattr(exc, "message", exc)).strip().splitlines()
            raise ModelError(
                f"running SavedModel {self.export_dir!r} failed (feeding "
                f"{', '.join(feeds)}; fetching {', '.join(fetches)}): "
                f"{first[0] if first else type(exc).__name__}"
            ) from None

    def close(self) -> None:
        self.session.close()


_MODELS: OrderedDict[tuple[Any, ...], LoadedModel] = OrderedDict()
_MODELS_LOCK = threading.Lock()


def get_model(export_dir: str, tags: Sequence[str], name: str | None = None,
              gpus: Sequence[str] = ()) -> LoadedModel:
    """The worker's loaded copy of a model (on the first of ``gpus``, the task's GPU
    addresses), loading it when absent or changed on disk; messages call it ``name``
    (default ``export_dir``)."""
    from sparktf.model.fetch import local_copy

    name, export_dir = name or export_dir, local_copy(export_dir)  # a URL: this host's copy
    real = os.path.realpath(export_dir)
    saved_model_file(export_dir)
    gpu = gpus[0] if gpus else None
    key = (real, tuple(tags), gpu, fingerprint(real))
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is not None:
            _MODELS.move_to_end(key)
            return model
        for old in [k for k in _MODELS if k[:3] == key[:3]]:
            log.info("model %s changed on disk: reloading", real)
            _MODELS.pop(old).close()
        model = LoadedModel(export_dir, tags, name, gpu)
        if gpu is not None:
            _announce(f"loaded model {name} on GPU {gpu} (the task's GPU addresses: "
                      f"{', '.join(gpus)}; worker pid {os.getpid()})")
        _MODELS[key] = model
        limit = max(1, _env_int("SPARKTF_MODEL_CACHE_SIZE") or 2)
        while len(_MODELS) > limit:
            _MODELS.popitem(last=False)[1].close()
        return model


def clear_cache() -> None:
    """Close and forget every model loaded by this process."""
    with _MODELS_LOCK:
        while _MODELS:
            _MODELS.popitem()[1].close()


def _model_dir(plan: Plan) -> str:
    if plan.archive is None:
        if not fs.is_remote(plan.export_dir) and not os.path.exists(plan.export_dir):
            raise ModelError(
                f"SavedModel directory {plan.name or plan.export_dir!r} does not exist on "
                f"executor host "
                f"{this_host()}: executors load exportDir themselves, so it must be a path "
                "every host can read; ship a driver-local model with shipModel=True "
                "(sparktf infer --ship_model) or put it on storage every host reaches")
        return plan.export_dir
    from pyspark import SparkFiles

    return SparkFiles.get(plan.archive)


def run_batch(
    model: LoadedModel | LazyModel, batch: pa.RecordBatch, plan: Plan
) -> list[np.ndarray]:
    """Score one Arrow batch: the fetched arrays, each checked to have one row per input row."""
    arrays = [
        to_tensor(batch.column(f.column), column=f.column, tensor=f.tensor,
                  dtype=f.dtype, shape=f.shape)
        for f in plan.feeds
    ]
    values = model.run([f.tensor for f in plan.feeds], [f.tensor for f in plan.fetches], arrays)
    for value, fetch in zip(values, plan.fetches, strict=True):
        check_batch_dim(value, rows=batch.num_rows, tensor=fetch.tensor)
    return values


def _score(model: LoadedModel | LazyModel, batch: pa.RecordBatch, plan: Plan) -> list[pa.Array]:
    """Score a record batch in slices of ``plan.batch_size`` rows; Arrow output columns."""
    size = plan.batch_size
    parts = [run_batch(model, batch.slice(start, size), plan)
             for start in range(0, batch.num_rows, size)]
    return [
        to_arrow(parts[0][i] if len(parts) == 1 else np.concatenate([p[i] for p in parts]),
                 rows=batch.num_rows, tensor=f.tensor, dtype=f.dtype)
        for i, f in enumerate(plan.fetches)
    ]


class LazyModel:
    """Loads the model on the first run, so bad input fails before TensorFlow is imported."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.model: LoadedModel | None = None

    def run(self, feeds: Sequence[str], fetches: Sequence[str],
            arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self.model is None:
            self.model = get_model(_model_dir(self.plan), self.plan.tags, self.plan.name,
                                   task_gpus())
        return self.model.run(feeds, fetches, arrays)


def map_batches(batches: Iterator[pa.RecordBatch], *, plan: Plan) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function: scored record batches for incoming record batches.

    Output columns are the pass-through columns, then one column per fetch. The model is
    loaded when the first batch has been converted, so empty partitions cost nothing.
    """
    freeze_survivors()
    names = [*plan.passthrough, *(f.column for f in plan.fetches)]
    model = LazyModel(plan)
    for batch in batches:
        if batch.num_rows == 0:
            continue
        outputs = _score(model, batch, plan)
        carried = [batch.column(name) for name in plan.passthrough]
        yield pa.RecordBatch.from_arrays([*carried, *outputs], names=names)
