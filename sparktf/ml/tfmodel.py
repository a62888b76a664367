"""``TFModel``: a Spark ML Transformer that scores a DataFrame with a TensorFlow SavedModel.

The driver reads the model's metadata, checks every name, dtype and shape it can, and
derives the output schema, so :meth:`TFModel.transform` returns at once without a Spark job.
Workers then load the model once per Python process and score Arrow batches
(:mod:`sparktf.model.runtime`).

Output column types (from the tensor's dtype and static shape; rank 1 -> scalar,
rank 2 -> array, rank >= 3 -> nested arrays):

============================  ===========
tensor dtype                  Spark type
============================  ===========
float16, float32              float
float64                       double
int8, int16, int32, uint8,    int
uint16
int64, uint32                 bigint
bool                          boolean
string                        binary (``.cast("string")`` decodes UTF-8)
============================  ===========

Inputs: numeric, boolean, string and binary columns and (nested) arrays of them feed
tensors of the dtype the model declares (rules in :mod:`sparktf.model.convert`; double into
float32 rounds, floating into integer tensors is refused). A flat array is reshaped to the
tensor's static shape (784 values -> [None, 28, 28, 1]); all rows of a batch must fit it.
A null cell or array element is a :class:`~sparktf.errors.ModelError` naming the column and
the row within the batch: fill or drop nulls first.

Examples
--------
>>> model = TFModel(exportDir=mnist_export, inputMapping={"image": "x"},
...                 outputMapping={"prediction": "prediction", "Relu": "features"})
>>> model.transform(df).printSchema()
root
 |-- prediction: long (nullable = true)
 |-- features: array (nullable = true)
 |    |-- element: float (containsNull = true)
<BLANKLINE>
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Sequence
from typing import Any

from pyspark import keyword_only
from pyspark.ml import Model
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import (
    DefaultParamsReadable,
    DefaultParamsWritable,
    DefaultParamsWriter,
    MLWriter,
)
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from sparktf import fs
from sparktf.errors import MappingError, ModelError
from sparktf.ml.checks import Names, check_columns, check_feed, spark_type, to_name_map
from sparktf.ml.fusion import fused_transform
from sparktf.ml.settings import DEFAULTS, check_params
from sparktf.ml.shipping import ship_model
from sparktf.model.convert import tensor_kind
from sparktf.model.metadata import TensorSpec, load_metadata
from sparktf.model.runtime import Feed, Fetch, Plan, map_batches
from sparktf.model.sources import resolve
from sparktf.spark.compat import on_this_host

log = logging.getLogger(__name__)

class _ParamsWriter(DefaultParamsWriter):
    """PySpark's params writer (a ``metadata`` folder of JSON, written by a Spark job on
    the driver's filesystem), whose ``overwrite()`` works from a Spark Connect client too:
    PySpark's own removes the old folder through a JVM helper only a classic session can
    reach; this one replaces it with an empty Spark output (mode ``overwrite``)."""

    def _handleOverwrite(self, path: str) -> None:
        empty = self.sparkSession.createDataFrame([], "value string")
        empty.write.mode("overwrite").text(path)


class TFModel(Model, DefaultParamsReadable["TFModel"], DefaultParamsWritable):
    """Score a DataFrame with a TensorFlow SavedModel, one loaded model per Python worker.

    Parameters
    ----------
    exportDir
        The model: a SavedModel directory (a path every worker can read, a local one with
        ``shipModel=True``, or a URL — ``s3://``, ``gs://``, ``abfs://``, ``hdfs://`` — that
        each host fetches once into its model cache, :mod:`sparktf.model.fetch`), a Keras
        3 ``.keras`` file (a path or URL), or an MLflow model URI (``models:/name/3``,
        ``models:/name@alias``, ``runs:/<run_id>/model``): those two are turned into a
        SavedModel on the driver, cached, and shipped to the executors
        (:mod:`sparktf.model.sources`).
    tagSet
        The meta graph's tags, comma-separated (default ``"serve"``).
    signatureDefKey
        When set, mappings name this signature's input and output aliases; when unset they
        name graph tensors (``x``, ``x:0``, ``Relu``), reaching tensors no signature exposes.
    inputMapping, outputMapping
        ``{column: tensor}`` and ``{tensor: column}``.
    batchSize
        Rows per ``Session.run`` (default 1024).
    passthroughColumns
        Input columns carried to the output (ids, labels); by default output rows hold only
        the mapped outputs.
    shipModel
        Distribute a local ``exportDir`` to the executors with Spark's file distribution.

    Examples
    --------
    >>> model = TFModel(exportDir=mnist_export, inputMapping={"image": "x"},
    ...                 outputMapping={"prediction": "prediction"}, passthroughColumns=["id"])
    >>> model.transform(df).columns
    ['id', 'prediction']
    >>> model.transform(df).count()
    8
    """

    exportDir: Param[str] = Param(
        Params._dummy(), "exportDir", "SavedModel directory", TypeConverters.toString)
    tagSet: Param[str] = Param(
        Params._dummy(), "tagSet", "comma-separated tags of the meta graph",
        TypeConverters.toString)
    signatureDefKey: Param[str] = Param(
        Params._dummy(), "signatureDefKey",
        "signature whose aliases the mappings name; unset: graph tensor names",
        TypeConverters.toString)
    inputMapping: Param[dict[str, str]] = Param(
        Params._dummy(), "inputMapping", "{column: tensor}", to_name_map)
    outputMapping: Param[dict[str, str]] = Param(
        Params._dummy(), "outputMapping", "{tensor: column}", to_name_map)
    batchSize: Param[int] = Param(
        Params._dummy(), "batchSize", "rows per Session.run", TypeConverters.toInt)
    passthroughColumns: Param[list[str]] = Param(
        Params._dummy(), "passthroughColumns", "input columns carried to the output",
        TypeConverters.toListString)
    shipModel: Param[bool] = Param(
        Params._dummy(), "shipModel", "distribute a local exportDir to the executors",
        TypeConverters.toBoolean)
    fuseScan: Param[bool] = Param(
        Params._dummy(), "fuseScan", "read, decode and score in one task when the input is "
        "a plain TFRecord (read_tfrecords) or Parquet scan", TypeConverters.toBoolean)

    @keyword_only
    def __init__(
        self, *, exportDir: str | None = None, tagSet: str = DEFAULTS.tag_set,
        signatureDefKey: str | None = None, inputMapping: dict[str, str] | None = None,
        outputMapping: dict[str, str] | None = None, batchSize: int = DEFAULTS.batch_size,
        passthroughColumns: list[str] | None = None, shipModel: bool = DEFAULTS.ship_model,
        fuseScan: bool = DEFAULTS.fuse_scan, **unknown: Any,
    ) -> None:
        super().__init__()
        self._setDefault(**DEFAULTS.as_params())
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(
        self, *, exportDir: str | None = None, tagSet: str = DEFAULTS.tag_set,
        signatureDefKey: str | None = None, inputMapping: dict[str, str] | None = None,
        outputMapping: dict[str, str] | None = None, batchSize: int = DEFAULTS.batch_size,
        passthroughColumns: list[str] | None = None, shipModel: bool = DEFAULTS.ship_model,
        fuseScan: bool = DEFAULTS.fuse_scan, **unknown: Any,
    ) -> TFModel:
        """Set params by keyword; ``None`` leaves a param unset. Unknown names and values
        that cannot work are refused (:func:`sparktf.ml.settings.check_params`)."""
        check_params(self._input_kwargs)
        return self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})

    def _set(self, **kwargs: Any) -> TFModel:
        check_params(kwargs)
        return super()._set(**kwargs)

    def setExportDir(self, value: str) -> TFModel:
        return self._set(exportDir=value)

    def getExportDir(self) -> str:
        return self.getOrDefault(self.exportDir)

    def setTagSet(self, value: str) -> TFModel:
        return self._set(tagSet=value)

    def getTagSet(self) -> str:
        return self.getOrDefault(self.tagSet)

    def setSignatureDefKey(self, value: str | None) -> TFModel:
        if value is None:
            self.clear(self.signatureDefKey)
            return self
        return self._set(signatureDefKey=value)

    def getSignatureDefKey(self) -> str | None:
        return self.getOrDefault(self.signatureDefKey) if self.isSet(self.signatureDefKey) else None

    def setInputMapping(self, value: dict[str, str]) -> TFModel:
        return self._set(inputMapping=value)

    def getInputMapping(self) -> dict[str, str]:
        return dict(self.getOrDefault(self.inputMapping))

    def setOutputMapping(self, value: dict[str, str]) -> TFModel:
        return self._set(outputMapping=value)

    def getOutputMapping(self) -> dict[str, str]:
        return dict(self.getOrDefault(self.outputMapping))

    def setBatchSize(self, value: int) -> TFModel:
        return self._set(batchSize=value)

    def getBatchSize(self) -> int:
        return self.getOrDefault(self.batchSize)

    def setPassthroughColumns(self, value: list[str]) -> TFModel:
        return self._set(passthroughColumns=value)

    def getPassthroughColumns(self) -> list[str]:
        return list(self.getOrDefault(self.passthroughColumns))

    def setShipModel(self, value: bool) -> TFModel:
        return self._set(shipModel=value)

    def getShipModel(self) -> bool:
        return self.getOrDefault(self.shipModel)

    def write(self) -> MLWriter:
        """The params writer: ``model.write().overwrite().save(path)``; ``TFModel.load(path)``
        reads it back, on a classic or a Spark Connect session."""
        return _ParamsWriter(self)

    # -- planning (driver) -------------------------------------------------------------

    def _required(self) -> tuple[str, dict[str, str], dict[str, str]]:
        if not self.isDefined(self.exportDir):
            raise ModelError("TFModel: exportDir is not set")
        mappings = []
        for param, example in ((self.inputMapping, '{"image": "x"}'),
                               (self.outputMapping, '{"prediction": "prediction"}')):
            value = self.getOrDefault(param) if self.isDefined(param) else {}
            if not value:
                raise MappingError(f"TFModel: {param.name} is empty; give e.g. {example}")
            mappings.append(dict(value))
        if self.getBatchSize() < 1:
            raise ModelError(f"TFModel: batchSize must be at least 1, found {self.getBatchSize()}")
        return self.getExportDir(), mappings[0], mappings[1]

    def check_names(self, columns: Sequence[str]) -> Names:
        """Check every name against the model and the input's column names, reading only the
        model's metadata: the tag set, the signature key, each tensor or alias of the
        mappings, each mapped and pass-through column. No Spark is needed, so the command
        line runs this while Spark starts.

        Raises
        ------
        ModelError, MappingError
            Naming what is unknown, with the closest names.
        """
        given, inputs, outputs = self._required()
        source = resolve(given)  # a .keras file or an MLflow URI: its SavedModel
        export_dir = source.location
        meta = load_metadata(export_dir, tag_set=self.getTagSet(), name=source.given)
        key = self.getSignatureDefKey()
        if key is not None:
            meta.signature(key)
        passthrough = self.getPassthroughColumns()
        check_columns(passthrough, columns, "passthrough")
        check_columns(list(inputs), columns, "input")
        feeds: list[tuple[str, TensorSpec]] = []
        fed: dict[str, str] = {}
        for column, name in inputs.items():
            spec = meta.resolve_input(name, signature_key=key)
            if spec.name in fed:
                raise MappingError(f"tensor {spec.name!r} is fed by two columns: "
                                   f"{fed[spec.name]!r} and {column!r}")
            fed[spec.name] = column
            feeds.append((column, spec))
        fetches: list[tuple[TensorSpec, str]] = []
        names = list(passthrough)
        for name, column in outputs.items():
            if column in names:
                raise MappingError(f"output column {column!r} is given twice (outputMapping "
                                   "and passthroughColumns must name distinct columns)")
            names.append(column)
            fetches.append((meta.resolve_output(name, signature_key=key), column))
        missing = meta.unfed_placeholders([s.name for s, _ in fetches], list(fed))
        if missing:
            raise MappingError(
                f"the outputs need placeholder(s) {', '.join(map(repr, missing))}, which "
                "inputMapping does not feed; map a column to each"
            )
        return Names(export_dir, meta, tuple(feeds), tuple(fetches), tuple(passthrough),
                     given=source.given, made_here=source.made_here)

    def plan(self, schema: T.StructType) -> tuple[Plan, T.StructType]:
        """Validate the params against ``schema`` and the model: the worker plan and schema.

        Raises
        ------
        ModelError, MappingError
            On a missing model, an unknown name, or a dtype or shape that cannot fit.
        """
        plan, out, _ = self._planned(schema)
        return plan, out

    def _planned(self, schema: T.StructType) -> tuple[Plan, T.StructType, bool]:
        """:meth:`plan`, and whether the model's SavedModel was made on this machine."""
        names = self.check_names(schema.fieldNames())
        feeds = []
        for column, spec in names.feeds:
            tensor_kind(spec.dtype)
            check_feed(schema[column], spec)
            feeds.append(Feed(column, spec.name, spec.dtype, spec.shape))
        fetches = [Fetch(spec.name, column, spec.dtype, spec.shape)
                   for spec, column in names.fetches]
        fields = [T.StructField(column, spark_type(spec), True) for spec, column in names.fetches]
        carried = [schema[name] for name in names.passthrough]
        plan = Plan(export_dir=names.export_dir, tags=names.meta.tags, feeds=tuple(feeds),
                    fetches=tuple(fetches), passthrough=names.passthrough,
                    batch_size=self.getBatchSize(), name=names.given or None)
        return plan, T.StructType([*carried, *fields]), names.made_here

    def _transform(self, dataset: DataFrame) -> DataFrame:
        plan, schema, made_here = self._planned(dataset.schema)
        ship = self.getShipModel() or (made_here and not on_this_host(dataset.sparkSession))
        if ship and not fs.is_remote(plan.export_dir):
            # (a URL needs no shipping: each worker host fetches it once, see model/fetch.py)
            archive = ship_model(dataset.sparkSession, plan.export_dir)
            plan = dataclasses.replace(plan, archive=archive)
        if self.getOrDefault(self.fuseScan):
            fused = fused_transform(dataset, plan, schema)
            if fused is not None:
                return fused
        needed = list(dict.fromkeys([*plan.passthrough, *(f.column for f in plan.feeds)]))
        quoted = ["`" + name.replace("`", "``") + "`" for name in needed]
        return dataset.select(*quoted).mapInArrow(functools.partial(map_batches, plan=plan),
                                                  schema)
