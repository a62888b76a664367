"""Read what a SavedModel holds, on the driver: tag sets, signatures, graph tensors.

The graph of the chosen tag set is imported (without restoring variables) so that every
tensor's dtype and static shape is known before any Spark job runs. Names resolve two ways:

- graph tensor names (``x``, ``x:0``, ``Relu``; ``:0`` is added when there is no ``:``),
  which reach tensors that no signature exposes;
- with a signature key, the signature's input and output aliases (``img``), resolved to
  their tensor names (for example ``serving_default_img:0``).

Examples
--------
>>> meta = load_metadata(mnist_export, tag_set="serve")
>>> meta.resolve_input("img", signature_key="serving_default")
TensorSpec(name='x:0', dtype='float32', shape=(None, 784))
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparktf._tf import tensorflow
from sparktf.errors import MappingError, ModelError, close_matches
from sparktf.model.convert import Shape, dims_of, shape_text

log = logging.getLogger(__name__)

_PB_NAMES = ("saved_model.pb", "saved_model.pbtxt")
_HIDDEN_PREFIX = "__"  # internal signatures such as __saved_model_init_op


@dataclass(frozen=True)
class TensorSpec:
    """A graph tensor: name (``op:index``), TensorFlow dtype name and static shape."""

    name: str
    dtype: str
    shape: Shape

    def describe(self) -> str:
        """``x:0 float32 [None, 784]``."""
        return f"{self.name} {self.dtype} {shape_text(self.shape)}"


@dataclass(frozen=True)
class SignatureInfo:
    """One signature: its key, method name, and aliases mapped to tensors."""

    key: str
    method_name: str
    inputs: dict[str, TensorSpec]
    outputs: dict[str, TensorSpec]


def parse_tags(tag_set: str | Sequence[str]) -> tuple[str, ...]:
    """A tag set given as ``"serve"``, ``"serve,gpu"`` or a list, as a sorted tuple.

    Examples
    --------
    >>> parse_tags("serve, gpu")
    ('gpu', 'serve')
    """
    items = tag_set.split(",") if isinstance(tag_set, str) else list(tag_set)
    return tuple(sorted({t.strip() for t in items if t.strip()}))


def tags_text(tags: Iterable[str]) -> str:
    """``'serve'`` or ``'serve,gpu'``: how a tag set is written on the command line."""
    return repr(",".join(tags))


def saved_model_file(export_dir: str | os.PathLike[str]) -> Path:
    """The ``saved_model.pb`` (or ``.pbtxt``) of ``export_dir``, or a :class:`ModelError`."""
    root = Path(export_dir)
    if not root.exists():
        parent = root.parent if str(root.parent) else Path(".")
        siblings = [p.name for p in parent.iterdir()] if parent.is_dir() else []
        hint = f"; {close_matches(root.name, siblings)} in {str(parent)!r}" if siblings else ""
        raise ModelError(f"SavedModel directory {str(root)!r} does not exist{hint}")
    if not root.is_dir():
        raise ModelError(f"SavedModel path {str(root)!r} is a file, not a directory")
    for name in _PB_NAMES:
        if (root / name).is_file():
            return root / name
    found = sorted(p.name for p in root.iterdir())[:20]
    raise ModelError(
        f"{str(root)!r} is not a SavedModel directory: it has no saved_model.pb or "
        f"saved_model.pbtxt (it holds: {', '.join(found) if found else 'nothing'})"
    )


def fingerprint(export_dir: str | os.PathLike[str]) -> tuple[int, ...]:
    """Modification times and sizes that change when the model directory is rewritten.

    Examples
    --------
    >>> len(fingerprint(mnist_export))  # the directory; .pb, variables, index: time, size
    7
    """
    root = Path(export_dir)
    parts: list[int] = [root.stat().st_mtime_ns]
    for path in (root / _PB_NAMES[0], root / _PB_NAMES[1], root / "variables",
                 root / "variables" / "variables.index"):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        parts += [stat.st_mtime_ns, stat.st_size]
    return tuple(parts)


def read_saved_model(export_dir: str | os.PathLike[str]) -> Any:
    """The parsed ``SavedModel`` protocol buffer of ``export_dir``."""
    path = saved_model_file(export_dir)
    tensorflow()
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        if path.suffix == ".pbtxt":
            text_format.Parse(path.read_text(encoding="utf-8"), proto)
        else:
            proto.ParseFromString(path.read_bytes())
    except Exception as exc:  # noqa: BLE001 - protobuf raises several kinds
        raise ModelError(f"cannot parse {str(path)!r} as a SavedModel: {exc}") from None
    return proto


def select_meta_graph(proto: Any, tags: tuple[str, ...], export_dir: str) -> Any:
    """The MetaGraphDef of ``proto`` whose tag set is ``tags``, or a :class:`ModelError`."""
    available = [parse_tags(list(mg.meta_info_def.tags)) for mg in proto.meta_graphs]
    for meta_graph, found in zip(proto.meta_graphs, available, strict=True):
        if found == tags:
            return meta_graph
    listed = ", ".join(tags_text(t) for t in available) or "none"
    raise ModelError(
        f"tag set {tags_text(tags)} not found in SavedModel {export_dir!r}; "
        f"its tag sets: {listed}"
    )


def _spec(tensor: Any) -> TensorSpec:
    shape = tensor.shape
    dims = None if shape.rank is None else dims_of(shape.as_list())
    return TensorSpec(tensor.name, tensor.dtype.name, dims)


def _info_spec(info: Any, graph: Any) -> TensorSpec:
    """A signature TensorInfo as a spec, using the graph's shape when it knows more."""
    tf = tensorflow()
    spec = _spec(graph.get_tensor_by_name(info.name))
    if spec.shape is None and not info.tensor_shape.unknown_rank:
        dims = dims_of([d.size for d in info.tensor_shape.dim])
        spec = TensorSpec(spec.name, tf.dtypes.as_dtype(info.dtype).name, dims)
    return spec


@dataclass
class ModelMetadata:
    """A SavedModel's tag sets, signatures and graph, read on the driver."""

    export_dir: str
    tags: tuple[str, ...]
    tag_sets: tuple[tuple[str, ...], ...]
    signatures: dict[str, SignatureInfo]
    graph: Any = field(repr=False)

    @property
    def public_signatures(self) -> list[str]:
        """Signature keys, without internal ones such as ``__saved_model_init_op``."""
        return sorted(k for k in self.signatures if not k.startswith(_HIDDEN_PREFIX))

    def operations(self) -> list[tuple[str, str, list[TensorSpec]]]:
        """Every graph operation: name, type and output tensors."""
        return [(op.name, op.type, [_spec(t) for t in op.outputs])
                for op in self.graph.get_operations()]

    def signature(self, key: str) -> SignatureInfo:
        """The signature ``key``, or a :class:`ModelError` listing the existing keys."""
        if key in self.signatures:
            return self.signatures[key]
        raise ModelError(
            f"signature {key!r} not found in SavedModel {self.export_dir!r} (tag set "
            f"{tags_text(self.tags)}); its signatures: "
            + (", ".join(map(repr, self.public_signatures)) or "none")
        )

    def tensor(self, name: str) -> TensorSpec:
        """The graph tensor ``name`` (``:0`` added when missing), or a :class:`MappingError`."""
        full = name if ":" in name else f"{name}:0"
        try:
            return _spec(self.graph.get_tensor_by_name(full))
        except (KeyError, ValueError):
            pass
        ops = self.graph.get_operations()
        pool = ([t.name for op in ops for t in op.outputs] if ":" in name
                else [op.name for op in ops if op.outputs])
        raise MappingError(
            f"tensor {name!r} not found in the graph of SavedModel {self.export_dir!r}; "
            f"{close_matches(name, pool)}; "
            f"`sparktf inspect --export_dir {self.export_dir} --ops` lists them all"
        )

    def _alias(self, name: str, signature_key: str, side: str) -> TensorSpec:
        signature = self.signature(signature_key)
        aliases = signature.inputs if side == "input" else signature.outputs
        if name in aliases:
            return aliases[name]
        raise MappingError(
            f"{side} alias {name!r} not found in signature {signature_key!r} of SavedModel "
            f"{self.export_dir!r}; {close_matches(name, aliases)}; its {side}s: "
            f"{', '.join(map(repr, aliases)) or 'none'}; "
            f"`sparktf inspect --export_dir {self.export_dir}` lists the signatures"
        )

    def resolve_input(self, name: str, *, signature_key: str | None = None) -> TensorSpec:
        """The tensor fed by ``name``: an input alias with a signature key, else a tensor."""
        if signature_key is None:
            return self.tensor(name)
        return self._alias(name, signature_key, "input")

    def resolve_output(self, name: str, *, signature_key: str | None = None) -> TensorSpec:
        """The tensor fetched by ``name``: an output alias with a signature key, else a tensor."""
        if signature_key is None:
            return self.tensor(name)
        return self._alias(name, signature_key, "output")

    def unfed_placeholders(self, fetches: Sequence[str], feeds: Sequence[str]) -> list[str]:
        """Placeholders (without defaults) that ``fetches`` need and ``feeds`` do not give."""
        fed = set(feeds)
        seen: set[str] = set()
        missing: list[str] = []
        stack = [self.graph.get_tensor_by_name(name).op for name in fetches if name not in fed]
        while stack:
            op = stack.pop()
            if op.name in seen:
                continue
            seen.add(op.name)
            if op.type == "Placeholder":
                missing.append(op.outputs[0].name)
            stack.extend(t.op for t in op.inputs if t.name not in fed)
            stack.extend(op.control_inputs)
        return sorted(missing)


def _signatures(meta_graph: Any, graph: Any) -> dict[str, SignatureInfo]:
    out: dict[str, SignatureInfo] = {}
    for key, sig in meta_graph.signature_def.items():
        try:
            inputs = {a: _info_spec(i, graph) for a, i in sig.inputs.items()}
            outputs = {a: _info_spec(i, graph) for a, i in sig.outputs.items()}
        except (KeyError, ValueError) as exc:
            if not key.startswith(_HIDDEN_PREFIX):
                log.warning("signature %r names a tensor missing from the graph: %s", key, exc)
            continue
        out[key] = SignatureInfo(key, sig.method_name, inputs, outputs)
    return out


def _import_graph(meta_graph: Any, export_dir: str) -> Any:
    tf = tensorflow()
    graph = tf.Graph()
    quiet = logging.getLogger("tensorflow")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with graph.as_default():
            tf.compat.v1.train.import_meta_graph(meta_graph, clear_devices=True)
    except Exception as exc:  # noqa: BLE001 - TensorFlow raises many kinds here
        raise ModelError(f"cannot import the graph of SavedModel {export_dir!r}: {exc}") from None
    finally:
        quiet.setLevel(level)
    return graph


_CACHE: dict[tuple[str, tuple[str, ...]], tuple[tuple[int, ...], ModelMetadata]] = {}
_LOCK = threading.Lock()


def load_metadata(
    export_dir: str | os.PathLike[str], *, tag_set: str | Sequence[str] = "serve",
    name: str | None = None,
) -> ModelMetadata:
    """Read a SavedModel's metadata for one tag set (cached until the directory changes).

    ``export_dir`` may be a URL (``s3://``, ``gs://`` ...): the model is fetched once into
    this host's model cache (see :mod:`sparktf.model.fetch`); messages name the URL.

    Raises
    ------
    ModelError
        When the directory is missing or not a SavedModel, or the tag set is unknown.

    Examples
    --------
    >>> meta = load_metadata(mnist_export)
    >>> meta.tensor("Relu").shape
    (None, 128)
    """
    from sparktf.model.fetch import local_copy

    name = name or str(export_dir)
    local = local_copy(export_dir)  # a URL: this host's cached copy
    saved_model_file(local)
    tags = parse_tags(tag_set)
    key = (os.path.realpath(local), tags)
    stamp = fingerprint(local)
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    proto = read_saved_model(local)
    meta_graph = select_meta_graph(proto, tags, name)
    graph = _import_graph(meta_graph, name)
    tag_sets = tuple(parse_tags(list(mg.meta_info_def.tags)) for mg in proto.meta_graphs)
    meta = ModelMetadata(name, tags, tag_sets, _signatures(meta_graph, graph), graph)
    with _LOCK:
        _CACHE[key] = (stamp, meta)
    return meta
