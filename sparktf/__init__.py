"""sparktf: TensorFlow SavedModels over Spark DataFrames, and TFRecord files in Spark.

Examples
--------
>>> import sparktf
>>> sparktf.__version__
'0.1.0'
"""

from __future__ import annotations

from typing import Any

from sparktf.errors import (
    MappingError,
    ModelError,
    SchemaError,
    SparkTFError,
    StorageError,
    TFRecordError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "register",
    "read_tfrecords",
    "write_tfrecords",
    "tfrecords_to_parquet",
    "parse_schema_hint",
    "configure_session",
    "TFModel",
    "load_metadata",
    "export_checkpoint",
    "list_operations",
    "SparkTFError",
    "TFRecordError",
    "SchemaError",
    "ModelError",
    "MappingError",
    "StorageError",
]

_LAZY = {
    "register": "sparktf.spark.api",
    "read_tfrecords": "sparktf.spark.api",
    "write_tfrecords": "sparktf.spark.api",
    "tfrecords_to_parquet": "sparktf.spark.convert",
    "parse_schema_hint": "sparktf.spark.api",
    "configure_session": "sparktf.spark.session",
    "TFModel": "sparktf.ml",
    "load_metadata": "sparktf.model",
    "export_checkpoint": "sparktf.model.export",
    "list_operations": "sparktf.model.export",
}


def __getattr__(name: str) -> Any:
    """Import the Spark-facing API on first use, so ``import sparktf`` stays fast."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sparktf' has no attribute {name!r}")
