"""Turn a TF1 checkpoint (meta graph + variables) into a SavedModel, on the driver.

:func:`list_operations` lists the operations of the latest checkpoint's graph, so one can
find the tensor names to map; :func:`export_checkpoint` restores the checkpoint and writes a
SavedModel whose signatures map aliases to those tensors, e.g.::

    {"serving_default": {"inputs": {"img": "x"}, "outputs": {"pred": "prediction"},
                         "method_name": "predict"}}

TensorFlow is imported only when a function runs (see :mod:`sparktf._tf`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparktf import fs
from sparktf._tf import tensorflow
from sparktf.errors import MappingError, ModelError, close_matches
from sparktf.model import remote_export

__all__ = ["Signature", "export_checkpoint", "list_operations", "parse_signatures"]

log = logging.getLogger(__name__)

METHOD_NAMES = {
    "predict": "tensorflow/serving/predict",
    "classify": "tensorflow/serving/classify",
    "regress": "tensorflow/serving/regress",
}
SIGNATURE_KEYS = ("inputs", "outputs", "method_name")


@dataclass(frozen=True)
class Signature:
    """One signature to export: ``{alias: tensor name}`` for inputs and outputs."""

    inputs: dict[str, str]
    outputs: dict[str, str]
    method_name: str = METHOD_NAMES["predict"]


def parse_signatures(obj: Any) -> dict[str, Signature]:
    """Check a signature object (as parsed from JSON) and normalise its method names.

    ``inputs`` may be empty or left out, ``outputs`` must name at least one tensor,
    ``method_name`` is ``predict`` (default), ``classify``, ``regress`` or a full name such as
    ``tensorflow/serving/predict``. ``{}`` means no signatures.

    Raises
    ------
    MappingError
        When the object does not have that shape; the message names the signature and key.

    Examples
    --------
    >>> sigs = parse_signatures({"serving_default": {"inputs": {"img": "x"},
    ...                                              "outputs": {"pred": "prediction"}}})
    >>> sigs["serving_default"].method_name
    'tensorflow/serving/predict'
    """
    if not isinstance(obj, Mapping):
        raise MappingError(
            "expected a JSON object {signature key: {inputs, outputs, method_name}}, "
            f"found {type(obj).__name__} {obj!r}"
        )
    return {_key(key): _signature(str(key), value) for key, value in obj.items()}


def _key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise MappingError(f"signature keys must be non-empty strings, found {key!r}")
    return key


def _signature(key: str, value: Any) -> Signature:
    where = f"signature {key!r}"
    if not isinstance(value, Mapping):
        raise MappingError(
            f"{where}: expected an object with {', '.join(SIGNATURE_KEYS)}, "
            f"found {type(value).__name__} {value!r}"
        )
    unknown = [k for k in value if k not in SIGNATURE_KEYS]
    if unknown:
        raise MappingError(
            f"{where}: unknown key {unknown[0]!r}; {close_matches(str(unknown[0]), SIGNATURE_KEYS)}"
        )
    outputs = _aliases(f"{where} outputs", value.get("outputs"))
    if not outputs:
        raise MappingError(f"{where}: 'outputs' must map at least one alias to a tensor name")
    inputs = _aliases(f"{where} inputs", value.get("inputs", {}))
    return Signature(inputs, outputs, _method_name(where, value.get("method_name", "predict")))


def _aliases(where: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise MappingError(
            f"{where}: expected an object {{alias: tensor name}}, "
            f"found {type(value).__name__} {value!r}"
        )
    for alias, name in value.items():
        if not isinstance(alias, str) or not alias or not isinstance(name, str) or not name:
            raise MappingError(
                f"{where}: aliases and tensor names must be non-empty strings, "
                f"found {alias!r}: {name!r}"
            )
    return dict(value)


def _method_name(where: str, value: Any) -> str:
    if isinstance(value, str) and value in METHOD_NAMES:
        return METHOD_NAMES[value]
    if isinstance(value, str) and value in METHOD_NAMES.values():
        return value
    known = [*METHOD_NAMES, *METHOD_NAMES.values()]
    raise MappingError(
        f"{where}: unknown method_name {value!r}; {close_matches(str(value), known)}"
    )


def parse_tag_set(tag_set: str | Sequence[str]) -> list[str]:
    """Split a comma-separated tag set (``"serve"``, ``"serve,gpu"``) into tags.

    Examples
    --------
    >>> parse_tag_set("serve, gpu")
    ['serve', 'gpu']
    """
    parts = tag_set.split(",") if isinstance(tag_set, str) else list(tag_set)
    tags = [str(t).strip() for t in parts if str(t).strip()]
    if not tags:
        raise MappingError(f"tag set {tag_set!r} names no tag; the usual one is 'serve'")
    return tags


def find_checkpoint(model_dir: str | Path) -> str:
    """The prefix of the latest checkpoint in ``model_dir``, which must have a meta graph.

    Like ``tf.train.latest_checkpoint``, it follows the ``checkpoint`` state file; when that
    file names an absolute path elsewhere (the folder was copied or moved), a checkpoint of the
    same name inside ``model_dir`` wins.

    Raises
    ------
    ModelError
        When the directory is missing or holds no usable checkpoint; the message lists
        what it holds.
    """
    tf = tensorflow()
    path = Path(model_dir)
    if not path.is_dir():
        raise ModelError(_missing_dir(path))
    try:
        state = tf.train.get_checkpoint_state(str(path))
    except ValueError:  # a state file naming no checkpoint
        state = None
    named = state.model_checkpoint_path if state is not None else ""
    candidates = [path / Path(named).name, Path(named)] if named else []
    prefix = next((str(c) for c in candidates if _is_checkpoint(c)), None)
    if prefix is None:
        raise ModelError(_no_checkpoint(path, named))
    if not Path(prefix + ".meta").is_file():
        raise ModelError(
            f"checkpoint {prefix!r} has no meta graph file {prefix + '.meta'!r}: sparktf needs "
            "the graph saved with the variables (tf.compat.v1.train.Saver().save writes it)"
        )
    return prefix


def _is_checkpoint(prefix: Path) -> bool:
    return prefix.with_name(prefix.name + ".index").is_file()


def _missing_dir(path: Path) -> str:
    what = "is not a directory" if path.exists() else "does not exist"
    parent = path.parent
    hint = ""
    if not path.exists() and parent.is_dir():
        near = close_matches(path.name, (p.name for p in parent.iterdir()))
        hint = f"; {near} (in {str(parent)!r})"
    return f"model directory {str(path)!r} {what}{hint}"


def _no_checkpoint(path: Path, named: str) -> str:
    msg = f"no TF1 checkpoint in {str(path)!r}"
    if named:
        msg += f": its 'checkpoint' file names {named!r}, whose .index file is missing"
    elif (path / "checkpoint").is_file():
        msg += ": its 'checkpoint' file names no checkpoint"
    else:
        msg += " (expected a 'checkpoint' file and model.ckpt-N.index/.meta/.data-* files)"
    if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
        msg += "; it is a SavedModel already: use it as the export directory"
    return f"{msg}; it holds: {_listing(path)}"


def _listing(path: Path, limit: int = 12) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    if not names:
        return "nothing (empty)"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


@contextmanager
def _imported_graph(model_dir: str | Path, *, restore: bool) -> Iterator[tuple[Any, Any, str]]:
    """Import the latest checkpoint's meta graph (and restore its variables) in a new Session."""
    tf = tensorflow()
    prefix = find_checkpoint(model_dir)
    from google.protobuf.message import Error as ProtobufError

    errors = (tf.errors.OpError, ProtobufError, OSError, ValueError, KeyError, TypeError)
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as sess:
        step = "import the meta graph of"
        try:
            saver = tf.compat.v1.train.import_meta_graph(prefix + ".meta", clear_devices=True)
            step = "restore the variables of"
            if restore and saver is not None:
                saver.restore(sess, prefix)
        except errors as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"cannot {step} checkpoint {prefix!r}: {first}") from exc
        log.info("imported %s: %d operations", prefix, len(graph.get_operations()))
        yield graph, sess, prefix


def list_operations(model_dir: str | Path) -> list[tuple[str, str]]:
    """The ``(name, type)`` of every operation in the latest checkpoint's graph, in graph order.

    Parameters
    ----------
    model_dir : str or Path
        A directory written by ``tf.compat.v1.train.Saver.save`` (``checkpoint`` file,
        ``model.ckpt-N.meta``, ``.index`` and ``.data-*``).

    Raises
    ------
    ModelError
        When the directory is missing, holds no checkpoint or the graph cannot be imported.

    Examples
    --------
    >>> ops = dict(list_operations(mnist_model))
    >>> ops["x"], ops["Relu"], ops["prediction"]
    ('Placeholder', 'Relu', 'ArgMax')
    """
    if fs.is_remote(str(model_dir)):  # copied to a local directory first
        return remote_export.list_operations(str(model_dir))
    with _imported_graph(model_dir, restore=False) as (graph, _, _):
        return [(op.name, op.type) for op in graph.get_operations()]


def export_checkpoint(
    model_dir: str | Path,
    export_dir: str | Path,
    *,
    signatures: Mapping[str, Any],
    tag_set: str | Sequence[str] = "serve",
    overwrite: bool = False,
) -> str:
    """Restore the latest TF1 checkpoint in ``model_dir`` and write it as a SavedModel.

    Parameters
    ----------
    model_dir : str or Path
        The checkpoint directory (see :func:`list_operations`); a URL is copied locally.
    export_dir : str or Path
        The SavedModel directory to write; it must not exist (or be empty) unless
        ``overwrite``. The SavedModel is built beside it and moved in place when complete;
        for a URL, built locally and uploaded (see :mod:`sparktf.model.remote_export`).
    signatures : mapping
        ``{key: {"inputs": {alias: tensor}, "outputs": {alias: tensor}, "method_name": m}}``
        (see :func:`parse_signatures`); tensor names with or without ``:0``. ``{}`` exports
        no signature: sparktf can still fetch the graph's tensors by name.
    tag_set : str or sequence of str
        The meta graph's tags, comma-separated (default ``"serve"``).
    overwrite : bool
        Replace an existing ``export_dir``.

    Returns
    -------
    str
        ``export_dir``.

    Raises
    ------
    MappingError
        A signature is malformed or names a tensor the graph lacks (with close matches).
    ModelError
        No checkpoint, an unreadable one, or ``export_dir`` exists.

    Examples
    --------
    >>> export_checkpoint(mnist_model, f"{tmp}/export", signatures={
    ...     "serving_default": {"inputs": {"img": "x"}, "outputs": {"pred": "prediction"}}})
    '.../export'
    """
    sigs = parse_signatures(signatures)
    tags = parse_tag_set(tag_set)
    if fs.is_remote(str(model_dir)) or fs.is_remote(str(export_dir)):  # staged locally
        return remote_export.export_checkpoint(str(model_dir), str(export_dir),
                                               signatures=signatures, tag_set=tag_set,
                                               overwrite=overwrite)
    target = Path(export_dir)
    _check_target(Path(model_dir), target, overwrite=overwrite)
    with _imported_graph(model_dir, restore=True) as (graph, sess, prefix):
        sig_defs = _signature_defs(graph, sigs, prefix)
        _write_saved_model(graph, sess, target, sig_defs, tags)
    log.info("exported %s to %s (tags %s, signatures %s)", prefix, target, tags, list(sig_defs))
    return str(export_dir)


def _check_target(model_dir: Path, target: Path, *, overwrite: bool) -> None:
    occupied = target.exists() and (not target.is_dir() or any(target.iterdir()))
    if occupied and not overwrite:
        raise ModelError(
            f"export directory {str(target)!r} already exists and is not empty "
            f"(it holds: {_listing(target) if target.is_dir() else 'a file'}); "
            "choose another one or overwrite it (--overwrite, overwrite=True)"
        )
    model, out = model_dir.resolve(), target.resolve()
    if occupied and (out == model or out in model.parents):
        raise ModelError(
            f"export directory {str(target)!r} holds the checkpoint directory "
            f"{str(model_dir)!r}: overwriting it would delete the checkpoint"
        )


def _signature_defs(graph: Any, sigs: Mapping[str, Signature], prefix: str) -> dict[str, Any]:
    tf = tensorflow()
    utils = tf.compat.v1.saved_model
    problems: list[str] = []
    defs: dict[str, Any] = {}
    for key, sig in sigs.items():
        infos: dict[str, dict[str, Any]] = {"inputs": {}, "outputs": {}}
        for kind, mapping in (("inputs", sig.inputs), ("outputs", sig.outputs)):
            for alias, name in mapping.items():
                try:
                    tensor = _tensor(graph, name)
                except MappingError as exc:
                    problems.append(f"signature {key!r} {kind[:-1]} {alias!r}: {exc}")
                    continue
                with _quiet_tf_logger():  # build_tensor_info logs a v1-API deprecation
                    infos[kind][alias] = utils.utils.build_tensor_info(tensor)
        defs[key] = utils.signature_def_utils.build_signature_def(
            inputs=infos["inputs"], outputs=infos["outputs"], method_name=sig.method_name
        )
        if sig.method_name != METHOD_NAMES["predict"] and not problems:
            if not utils.signature_def_utils.is_valid_signature(defs[key]):
                log.warning(
                    "signature %r does not follow TF Serving's %s conventions; "
                    "saved_model_cli and sparktf accept it, TF Serving may not",
                    key,
                    sig.method_name,
                )
    if problems:
        raise MappingError(f"in the graph of {prefix!r}: " + "; ".join(problems))
    return defs


@contextmanager
def _quiet_tf_logger() -> Iterator[None]:
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _tensor(graph: Any, name: str) -> Any:
    """The tensor ``name`` (``op:index``; a bare op name means its first output)."""
    op_name, sep, index = name.rpartition(":")
    if not sep or not index.isdigit():
        op_name, index = name, "0"
    try:
        op = graph.get_operation_by_name(op_name)
    except (KeyError, ValueError):
        ops = graph.get_operations()
        pool = [op.name for op in ops] if not sep else [t.name for op in ops for t in op.outputs]
        raise MappingError(f"no tensor {name!r}; {close_matches(name, pool)}") from None
    if int(index) >= len(op.outputs):
        raise MappingError(
            f"operation {op.name!r} ({op.type}) has {len(op.outputs)} output(s), "
            f"so no tensor {op.name}:{index}"
        )
    return op.outputs[int(index)]


def _write_saved_model(
    graph: Any, sess: Any, target: Path, sig_defs: Mapping[str, Any], tags: list[str]
) -> None:
    """Build the SavedModel in a temporary sibling of ``target``, then move it in place."""
    tf = tensorflow()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        builder = tf.compat.v1.saved_model.Builder(str(tmp))
        keys = tf.compat.v1.GraphKeys
        tables = graph.get_collection(keys.TABLE_INITIALIZERS)
        builder.add_meta_graph_and_variables(
            sess,
            tags,
            signature_def_map=dict(sig_defs),
            assets_collection=graph.get_collection(keys.ASSET_FILEPATHS) or None,
            main_op=tf.group(*tables, name="sparktf_init_tables") if tables else None,
            clear_devices=True,
            strip_default_attrs=True,
        )
        builder.save()
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
