"""Spark types for TFRecord features: what each feature kind may become, and inference.

Feature kinds are the three lists of ``tf.train.Feature``: ``bytes`` (BytesList),
``int64`` (Int64List) and ``float`` (FloatList). A column has a *depth*: 0 for a scalar,
1 for ``array<...>``, 2 for ``array<array<...>>`` (a SequenceExample feature list).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    ByteType,
    DataType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
    StructField,
    StructType,
)

from sparktf.errors import SchemaError

if TYPE_CHECKING:
    import pyarrow as pa

KINDS = ("bytes", "int64", "float")

#: Which Spark element types each feature kind may be read as.
READABLE: dict[str, tuple[type[DataType], ...]] = {
    "bytes": (BinaryType, StringType, BooleanType),
    "int64": (BooleanType, IntegerType, LongType, FloatType, DoubleType),
    "float": (FloatType, DoubleType),
}

#: The kind each Spark element type is written as.
WRITTEN_AS: dict[type[DataType], str] = {
    BooleanType: "int64",
    IntegerType: "int64",
    LongType: "int64",
    FloatType: "float",
    DoubleType: "float",
    StringType: "bytes",
    BinaryType: "bytes",
}

#: The Spark type a kind is inferred as without a hint.
INFERRED: dict[str, DataType] = {"bytes": StringType(), "int64": LongType(), "float": FloatType()}

BYTE_ARRAY_COLUMN = "byteArray"


@dataclass(frozen=True)
class Column:
    """A schema field seen as a feature: name, depth, element type and nullability."""

    name: str
    depth: int
    element: DataType
    nullable: bool
    field: StructField

    @property
    def preferred_kind(self) -> str:
        """The kind to try first when decoding in bulk."""
        return WRITTEN_AS[type(self.element)]

    def accepts(self, kind: str) -> bool:
        return isinstance(self.element, READABLE[kind])


def column_of(field: StructField, *, max_depth: int) -> Column:
    """Describe ``field`` as a :class:`Column`, or raise naming the column and its type."""
    depth, element = 0, field.dataType
    while isinstance(element, ArrayType):
        depth, element = depth + 1, element.elementType
    if type(element) not in WRITTEN_AS or depth > max_depth:
        allowed = "boolean, int, bigint, float, double, string, binary"
        nest = "array<...>" if max_depth == 1 else "array<...> or array<array<...>>"
        raise SchemaError(
            f"column {field.name!r}: type {field.dataType.simpleString()} is not supported by "
            f"TFRecord; expected one of {allowed}, or {nest} of these"
        )
    return Column(field.name, depth, element, field.nullable, field)


def columns_of(schema: StructType, record_type: str) -> list[Column]:
    """All columns of ``schema`` for ``record_type``; raises before any I/O if one cannot fit."""
    max_depth = 2 if record_type == "SequenceExample" else 1
    return [column_of(f, max_depth=max_depth) for f in schema.fields]


@dataclass
class FeatureStats:
    """What a sample of records shows about one feature."""

    kinds: dict[str, str]  # kind -> a file where it was seen
    list_feature: bool = False  # a SequenceExample feature list
    not_single: bool = False  # some record held other than exactly one value
    binary: bool = False  # some bytes value is not valid UTF-8

    def spark_type(self, name: str) -> DataType:
        if len(self.kinds) > 1:
            seen = "; ".join(f"{k} in {p}" for k, p in sorted(self.kinds.items()))
            raise SchemaError(
                f"feature {name!r} has different kinds across records ({seen}); give its type "
                f"with a schema hint, e.g. schemaHint='struct<{name}:array<float>>'"
            )
        kind = next(iter(self.kinds))
        element = BinaryType() if kind == "bytes" and self.binary else INFERRED[kind]
        if self.list_feature:
            return ArrayType(ArrayType(element))
        return ArrayType(element) if self.not_single else element


def byte_array_schema() -> StructType:
    """The schema of ``recordType=ByteArray``: one binary column of raw records."""
    return StructType([StructField(BYTE_ARRAY_COLUMN, BinaryType(), False)])


#: Arrow types of the Spark scalar types sparktf reads and writes (Spark's own mapping).
_ARROW_NAMES: dict[type[DataType], str] = {
    BooleanType: "bool_", ByteType: "int8", ShortType: "int16", IntegerType: "int32",
    LongType: "int64", FloatType: "float32", DoubleType: "float64", StringType: "string",
    BinaryType: "binary",
}


def arrow_type(data_type: DataType, *, column: str = "") -> pa.DataType:
    """The Arrow type Spark exchanges ``data_type`` as (scalars and nested arrays of them).

    Examples
    --------
    >>> arrow_type(ArrayType(FloatType(), False))
    ListType(list<element: float not null>)
    """
    import pyarrow as pa

    if isinstance(data_type, ArrayType):
        element = arrow_type(data_type.elementType, column=column)
        return pa.list_(pa.field("element", element, nullable=data_type.containsNull))
    name = _ARROW_NAMES.get(type(data_type))
    partition_only = _partition_type(data_type)
    if partition_only is not None:  # types a partition directory may hold, not a feature
        return partition_only
    if name is None:
        supported = ", ".join(sorted(t.typeName() for t in _ARROW_NAMES))
        raise SchemaError(f"column {column!r} has type {data_type.simpleString()}; sparktf "
                          f"supports {supported} and (nested) arrays of them")
    return getattr(pa, name)()


def _partition_type(data_type: DataType) -> pa.DataType | None:
    """The Arrow type of a partition column of a type no TFRecord feature has."""
    import pyarrow as pa
    from pyspark.sql.types import DateType, DecimalType, TimestampNTZType, TimestampType

    if isinstance(data_type, DateType):
        return pa.date32()
    if isinstance(data_type, TimestampType):
        return pa.timestamp("us", tz="UTC")
    if isinstance(data_type, TimestampNTZType):
        return pa.timestamp("us")
    if isinstance(data_type, DecimalType):
        return pa.decimal128(data_type.precision, data_type.scale)
    return None


def arrow_schema(schema: StructType) -> pa.Schema:
    """The Arrow schema of Spark batches of ``schema`` (field metadata is not carried).

    Examples
    --------
    >>> arrow_schema(StructType([StructField("x", LongType(), False)]))
    x: int64 not null
    """
    import pyarrow as pa

    return pa.schema([pa.field(f.name, arrow_type(f.dataType, column=f.name), f.nullable)
                      for f in schema.fields])
