"""Static checks of TFModel's params against a model and a DataFrame, on the driver.

What a column can feed (:func:`check_feed`), which Spark type an output tensor becomes
(:func:`spark_type`, the table in :mod:`sparktf.ml.tfmodel`), and that named columns exist
(:func:`check_columns`, with the closest names).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import types as T

from sparktf.errors import MappingError, ModelError, close_matches
from sparktf.model.convert import check_kinds, shape_text
from sparktf.model.metadata import ModelMetadata, TensorSpec

_SPARK_TYPES: dict[str, T.DataType] = {
    "float16": T.FloatType(), "float32": T.FloatType(), "float64": T.DoubleType(),
    "int8": T.IntegerType(), "int16": T.IntegerType(), "int32": T.IntegerType(),
    "uint8": T.IntegerType(), "uint16": T.IntegerType(), "int64": T.LongType(),
    "uint32": T.LongType(), "bool": T.BooleanType(), "string": T.BinaryType(),
}
_SPARK_KINDS: dict[type, str] = {
    T.BooleanType: "b", T.ByteType: "i", T.ShortType: "i", T.IntegerType: "i",
    T.LongType: "i", T.FloatType: "f", T.DoubleType: "f", T.StringType: "s", T.BinaryType: "s",
}


def to_name_map(value: Any) -> dict[str, str]:
    """Type converter of the mapping params: a dict (or JSON object text) of names."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise TypeError(f"expected a dict or a JSON object, found {value!r}") from exc
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TypeError(f"expected a dict of names to names, found {value!r}")
    return dict(value)


def spark_type(spec: TensorSpec) -> T.DataType:
    """The Spark type of an output column fetched from ``spec`` (see the module table).

    Examples
    --------
    >>> spark_type(TensorSpec("Relu:0", "float32", (None, 128))).simpleString()
    'array<float>'
    """
    if spec.dtype not in _SPARK_TYPES:
        raise ModelError(
            f"output tensor {spec.name!r} has dtype {spec.dtype}, which has no Spark type; "
            f"supported: {', '.join(_SPARK_TYPES)}"
        )
    if spec.shape is None:
        raise ModelError(
            f"output tensor {spec.name!r} has an unknown static rank, so its column type "
            "cannot be known before running; fetch a tensor of known rank"
        )
    if len(spec.shape) == 0 or spec.shape[0] is not None:
        raise ModelError(
            f"output tensor {spec.name!r} has shape {shape_text(spec.shape)}: its first "
            "dimension is not the batch (None), so its values cannot be split into rows"
        )
    result = _SPARK_TYPES[spec.dtype]
    for _ in spec.shape[1:]:
        result = T.ArrayType(result, containsNull=True)
    return result


def _column_kind(data_type: T.DataType) -> tuple[str | None, int]:
    """The scalar kind of a (nested) array column and its nesting depth."""
    depth = 0
    while isinstance(data_type, T.ArrayType):
        data_type, depth = data_type.elementType, depth + 1
    return _SPARK_KINDS.get(type(data_type)), depth


def check_feed(field: T.StructField, spec: TensorSpec) -> None:
    """Static checks of one column against the tensor it feeds."""
    kind, depth = _column_kind(field.dataType)
    found = field.dataType.simpleString()
    if kind is None:
        raise ModelError(
            f"column {field.name!r} of type {found} cannot feed tensor {spec.name!r}: "
            "supported columns are numeric, boolean, string, binary and arrays of them"
        )
    check_kinds(kind, spec.dtype, column=field.name, tensor=spec.name, found=found)
    shape = spec.shape
    if shape is not None and (len(shape) == 0 or shape[0] is not None):
        raise ModelError(
            f"tensor {spec.name!r} fed by column {field.name!r} has shape "
            f"{shape_text(shape)}: its first dimension is not a batch dimension (None)"
        )
    if depth == 0 and shape is not None and None not in shape[1:]:
        if math.prod(int(d or 0) for d in shape[1:]) != 1:
            raise ModelError(
                f"column {field.name!r} cannot feed tensor {spec.name!r}: expected shape "
                f"{shape_text(shape)}, found shape [None] (one value per row: the column's "
                f"type is {found})"
            )


@dataclass(frozen=True)
class Names:
    """What :meth:`TFModel.check_names` resolved: the model and each mapped tensor."""

    export_dir: str
    meta: ModelMetadata
    feeds: tuple[tuple[str, TensorSpec], ...]  # (column, tensor)
    fetches: tuple[tuple[TensorSpec, str], ...]  # (tensor, column)
    passthrough: tuple[str, ...]
    given: str = ""  #: the model as the user named it (a .keras file, an MLflow URI)
    made_here: bool = False  #: the SavedModel was made on this machine: ship it


def check_columns(names: list[str], columns: Sequence[str], what: str) -> None:
    for name in names:
        if name not in columns:
            raise MappingError(
                f"{what} column {name!r} not found in the DataFrame; "
                f"{close_matches(name, columns)}; its columns: "
                + ", ".join(repr(c) for c in columns)
            )
