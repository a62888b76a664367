"""TensorFlow's ``Example`` and ``SequenceExample`` protobuf classes, without importing
TensorFlow.

``tensorflow.core.example.example_pb2`` cannot be imported alone: importing it runs
``tensorflow/__init__.py``, which loads all of TensorFlow (3-4 s, hundreds of MB). The
generated modules hold each ``.proto`` file as a serialized ``FileDescriptorProto`` (the
argument of their ``AddSerializedFile`` call); :func:`example_classes` reads those two
arguments from TensorFlow's installed ``feature_pb2.py`` and ``example_pb2.py`` (without
running them), adds them to a private :class:`~google.protobuf.descriptor_pool.DescriptorPool`
(so nothing clashes with TensorFlow's own when it is imported later) and builds the message
classes with protobuf's ``message_factory``: TensorFlow's own definitions, on protobuf's C
runtime, for the schema inference on the driver and for the first records a task reads in a
process that has no TensorFlow yet (:mod:`sparktf.tfrecord.light`).

Where those files cannot be read that way (another layout of a future TensorFlow), it falls
back to TensorFlow's module. The classes are built once per process (``functools.cache``):
they hold no data.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import logging
import os
from typing import Any, NamedTuple

log = logging.getLogger(__name__)

#: TensorFlow's generated modules, in dependency order.
_FILES = ("feature_pb2.py", "example_pb2.py")


class ExampleClasses(NamedTuple):
    """The message classes :class:`~sparktf.tfrecord.decode.Decoder` parses records with."""

    Example: Any
    SequenceExample: Any


@functools.cache
def example_classes() -> ExampleClasses:
    """``Example`` and ``SequenceExample``, without TensorFlow when its files allow.

    Examples
    --------
    >>> classes = example_classes()
    >>> classes.Example.DESCRIPTOR.full_name
    'tensorflow.Example'
    >>> record = classes.Example()
    >>> record.features.feature["x"].float_list.value.extend([0.5, 2.0])
    >>> list(classes.Example.FromString(record.SerializeToString())
    ...      .features.feature["x"].float_list.value)
    [0.5, 2.0]
    """
    try:
        return _without_tensorflow()
    except (OSError, SyntaxError, ValueError, TypeError, KeyError) as exc:
        log.debug("TensorFlow's Example protos not read from its files (%s): importing it", exc)
    from sparktf._tf import example_pb2

    module = example_pb2()
    return ExampleClasses(module.Example, module.SequenceExample)


def _without_tensorflow() -> ExampleClasses:
    from google.protobuf import descriptor_pool, message_factory

    folder = _example_folder()
    pool = descriptor_pool.DescriptorPool()
    for name in _FILES:
        pool.AddSerializedFile(_serialized_file(os.path.join(folder, name)))
    return ExampleClasses(
        *(message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.{name}"))
          for name in ExampleClasses._fields))


def _example_folder() -> str:
    """``tensorflow/core/example`` of the installed TensorFlow, found without importing it."""
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise OSError("TensorFlow is not installed")
    return os.path.join(list(spec.submodule_search_locations)[0], "core", "example")


def _serialized_file(path: str) -> bytes:
    """The bytes a generated ``*_pb2.py`` passes to ``AddSerializedFile``."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "AddSerializedFile" and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, bytes)):
            return node.args[0].value
    raise ValueError(f"{path}: no AddSerializedFile(b'...') call")
