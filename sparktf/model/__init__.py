"""The model runtime: SavedModel metadata (driver), batch scoring (workers), conversions.

Nothing here imports TensorFlow at import time; it is loaded on first use.
"""

from sparktf.model.metadata import (
    ModelMetadata,
    SignatureInfo,
    TensorSpec,
    load_metadata,
    parse_tags,
)
from sparktf.model.runtime import Feed, Fetch, Plan, get_model, map_batches

__all__ = [
    "Feed",
    "Fetch",
    "ModelMetadata",
    "Plan",
    "SignatureInfo",
    "TensorSpec",
    "get_model",
    "load_metadata",
    "map_batches",
    "parse_tags",
]
