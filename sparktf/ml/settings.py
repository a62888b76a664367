"""The defaults and checks of :class:`~sparktf.ml.TFModel`'s params, in one place.

``TFModel`` is a Spark ML stage, so its settings are PySpark ``Param`` objects (they save,
load and copy with the stage). Their defaults live here, in :data:`DEFAULTS`, and so do the
checks that run whenever params are set: an unknown name is refused with the closest
accepted one, a bad value with what was expected.

Examples
--------
>>> DEFAULTS.batch_size
1024
>>> check_params({"batchsize": 5})
Traceback (most recent call last):
    ...
sparktf.errors.ModelError: TFModel: unknown param 'batchsize'; closest: 'batchSize'; \
accepted: exportDir, tagSet, signatureDefKey, inputMapping, outputMapping, batchSize, \
passthroughColumns, shipModel, fuseScan
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sparktf.errors import MappingError, ModelError, close_matches

PARAMS = ("exportDir", "tagSet", "signatureDefKey", "inputMapping", "outputMapping",
          "batchSize", "passthroughColumns", "shipModel", "fuseScan")


@dataclass(frozen=True)
class TFModelDefaults:
    """Default values of the params that have one."""

    tag_set: str = "serve"
    batch_size: int = 1024
    passthrough_columns: tuple[str, ...] = ()
    ship_model: bool = False
    fuse_scan: bool = True

    def as_params(self) -> dict[str, Any]:
        """The defaults keyed by param name."""
        return {"tagSet": self.tag_set, "batchSize": self.batch_size,
                "passthroughColumns": list(self.passthrough_columns),
                "shipModel": self.ship_model, "fuseScan": self.fuse_scan}


DEFAULTS = TFModelDefaults()


def check_params(params: Mapping[str, Any]) -> None:
    """Refuse unknown param names and values that can never work, before any job."""
    for name, value in params.items():
        if name not in PARAMS:
            raise ModelError(f"TFModel: unknown param {name!r}; "
                             f"{close_matches(name, PARAMS, n=1)}; accepted: {', '.join(PARAMS)}")
        if value is None:
            continue
        if name == "batchSize" and (isinstance(value, bool) or not isinstance(value, int)
                                    or value < 1):
            raise ModelError(f"TFModel: batchSize must be a positive integer, found {value!r}")
        if name in ("inputMapping", "outputMapping") and isinstance(value, Mapping) and not value:
            example = '{"image": "x"}' if name == "inputMapping" else '{"prediction": "y"}'
            raise MappingError(f"TFModel: {name} is empty; give e.g. {example}")
        if name in ("exportDir", "tagSet") and isinstance(value, str) and not value.strip():
            raise ModelError(f"TFModel: {name} is empty")
