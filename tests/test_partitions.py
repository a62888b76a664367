"""``key=value/`` directories as columns (``sparktf.partitions``, ``sparktf.listing``): Spark's
inference and escaping, reading a tree through every path, basePath, hints, pruning."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import sparktf
from sparktf._tf import example_pb2
from sparktf.errors import SchemaError, TFRecordError
from sparktf.listing import list_inputs
from sparktf.partitions import (
    DEFAULT_PARTITION_NAME,
    discover,
    escape,
    fragment,
    infer_type,
    parse_dir,
    unescape,
    wider,
)
from sparktf.spark.errors import reraise
from sparktf.tfrecord.framing import RecordFileWriter


@given(st.text(min_size=1))
def test_escaping_round_trips(text) -> None:
    assert unescape(escape(text)) == text
    assert "/" not in escape(text) and "=" not in escape(text)


@given(st.lists(st.tuples(st.text(min_size=1), st.text(min_size=1)), min_size=1, max_size=4))
def test_fragments_parse_back(pairs) -> None:
    parts = fragment(pairs).split("/")
    assert [(k, unescape(v)) for k, v in map(parse_dir, parts)] == pairs


@pytest.mark.parametrize(
    ("raw", "kind"),
    [("7", "int"), ("-2147483648", "int"), ("2147483648", "bigint"), ("007", "int"),
     ("99999999999999999999", "decimal(38,0)"), ("1.5", "double"), ("1e10", "double"),
     ("2024-01-31", "date"), ("2024-01-31 10%3A00%3A00", "timestamp"),
     ("2024-02-30", "string"), ("abc", "string"), ("1.5.1", "string"),
     (DEFAULT_PARTITION_NAME, "void")],
)
def test_types_are_inferred_as_spark_does(raw, kind) -> None:
    assert infer_type(raw) == kind


@pytest.mark.parametrize(
    ("a", "b", "kind"),
    [("int", "bigint", "bigint"), ("int", "double", "double"), ("bigint", "double", "string"),
     ("int", "decimal(38,0)", "decimal(38,0)"), ("double", "decimal(38,0)", "string"),
     ("date", "timestamp", "timestamp"), ("int", "date", "string"), ("void", "date", "date"),
     ("string", "int", "string")],
)
def test_types_widen_as_spark_does(a, b, kind) -> None:
    assert wider(a, b) == wider(b, a) == kind


def test_discovery_widens_and_nulls() -> None:
    dirs = [("day=1", "v=1"), ("day=2", "v=2.5"), ("day=3", f"v={DEFAULT_PARTITION_NAME}")]
    spec, rows = discover(dirs)
    assert spec.columns == (("day", "int"), ("v", "double"))
    assert rows == [0, 1, 2] and spec.typed(2) == [3, None]
    hinted, _ = discover(dirs, hint={"v": "string"})
    assert hinted.columns == (("day", "int"), ("v", "string"))


def test_mixed_layouts_name_the_paths_and_base_path() -> None:
    with pytest.raises(SchemaError, match=r"conflicting directory structures.*day: a/x.*"
                       r"kind: b/y.*basePath"):
        discover([("day=1",), ("kind=a",)], shown=["a/x", "b/y"])


# -- reading a tree ----------------------------------------------------------------------


def _example(**features: Any) -> bytes:
    message = example_pb2().Example()
    for name, value in features.items():
        if isinstance(value, float):
            message.features.feature[name].float_list.value.append(value)
        elif isinstance(value, bytes):
            message.features.feature[name].bytes_list.value.append(value)
        else:
            message.features.feature[name].int64_list.value.append(value)
    return message.SerializeToString()


def write_tree(root: Path, layout: dict[str, list[bytes]]) -> Path:
    for folder, records in layout.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        with RecordFileWriter(str(root / folder / "part-0.tfrecord")) as writer:
            for record in records:
                writer.write(record)
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tree") / "t"
    return write_tree(root, {
        "day=2024-01-30/kind=a": [_example(id=i, x=float(i)) for i in range(0, 3)],
        "day=2024-01-30/kind=b": [_example(id=i, x=float(i)) for i in range(3, 5)],
        f"day=2024-01-31/kind={DEFAULT_PARTITION_NAME}": [_example(id=5, x=5.0)],
        "day=2024-01-31/kind=a%2Fb": [_example(id=6, x=6.0, extra=b"only here")],
    })


def _rows(df) -> list[tuple]:
    return sorted((tuple(r) for r in df.collect()), key=repr)


def test_a_tree_reads_with_typed_partition_columns(any_spark, tree) -> None:
    df = sparktf.read_tfrecords(any_spark, str(tree))
    assert df.schema.simpleString() == (
        "struct<extra:string,id:bigint,x:float,day:date,kind:string>")
    rows = _rows(df.select("id", "day", "kind", "extra"))
    jan30, jan31 = dt.date(2024, 1, 30), dt.date(2024, 1, 31)
    assert rows == [(0, jan30, "a", None), (1, jan30, "a", None), (2, jan30, "a", None),
                    (3, jan30, "b", None), (4, jan30, "b", None), (5, jan31, None, None),
                    (6, jan31, "a/b", "only here")]


def test_the_data_source_and_infers_scan_agree(spark, tree) -> None:
    from sparktf.spark.api import plan_scan, scan_tfrecords

    sparktf.register(spark)
    through_format = spark.read.format("tfrecord").load(str(tree))
    light = scan_tfrecords(spark, plan_scan(str(tree), None, {}))
    assert through_format.schema == light.schema
    assert _rows(through_format) == _rows(light)


def test_a_hint_types_a_partition_column(spark, tree) -> None:
    df = sparktf.read_tfrecords(spark, str(tree), schema_hint="day string, id int")
    assert df.schema["day"].dataType.simpleString() == "string"
    assert sorted({r.day for r in df.collect()}) == ["2024-01-30", "2024-01-31"]


def test_base_path_keeps_the_columns_of_a_partition_directory(spark, tree) -> None:
    inner = str(tree / "day=2024-01-30")
    plain = sparktf.read_tfrecords(spark, inner)
    assert "day" not in plain.columns and "kind" in plain.columns
    based = sparktf.read_tfrecords(spark, inner, base_path=str(tree))
    assert {r.day for r in based.collect()} == {dt.date(2024, 1, 30)}
    with pytest.raises(TFRecordError, match=r"is not under basePath"):
        sparktf.read_tfrecords(spark, inner, base_path=str(tree / "elsewhere"))


def test_a_feature_named_like_a_partition_column_is_an_error(spark, tmp_path) -> None:
    root = write_tree(tmp_path / "t", {"id=1": [_example(id=1)]})
    with pytest.raises(SchemaError, match=r"feature 'id' of the records has the name of a "
                       r"partition column"):
        sparktf.read_tfrecords(spark, str(root))


def test_inference_samples_every_partition(tmp_path) -> None:
    layout = {f"p={i}": [_example(a=i)] * 3 for i in range(40)}
    layout["p=39"] = [_example(a=39, late=b"x")]
    root = write_tree(tmp_path / "t", layout)
    from sparktf.listing import sample_across

    sampled = sample_across(list_inputs(str(root)))
    assert any("p=39" in s for s in sampled) and len(sampled) == 32


def test_fused_scoring_keeps_partition_columns(spark, tmp_path, rowsum_export) -> None:
    root = write_tree(tmp_path / "t", {
        f"kind={k}": [_example(id=i, x=float(i)) for i in range(n)] for k, n in (("a", 3),
                                                                               ("b", 2))})
    df = sparktf.read_tfrecords(spark, str(root), schema_hint="x array<float>")
    model = sparktf.TFModel(exportDir=str(rowsum_export), inputMapping={"x": "x"},
                            outputMapping={"total": "total"}, passthroughColumns=["id", "kind"])
    fused = _rows(model.transform(df))
    general = _rows(sparktf.TFModel(exportDir=str(rowsum_export), inputMapping={"x": "x"},
                                    outputMapping={"total": "total"},
                                    passthroughColumns=["id", "kind"], fuseScan=False)
                    .transform(df))
    assert fused == general == [(0, "a", 0.0), (0, "b", 0.0), (1, "a", 1.0), (1, "b", 1.0),
                                (2, "a", 2.0)]


@pytest.fixture(scope="module")
def rowsum_export(tmp_path_factory) -> Path:
    from tests.models import build_rowsum

    return build_rowsum(tmp_path_factory.mktemp("models") / "rowsum1", width=1)


def test_filters_on_partition_columns_skip_other_directories(spark, tmp_path) -> None:
    """With Spark's Python filter pushdown on, the files of directories a filter rules out
    are never opened: a corrupt file there does not fail the query."""
    root = write_tree(tmp_path / "t", {"day=1": [_example(id=1)], "day=2": [_example(id=2)]})
    (root / "day=1" / "part-0.tfrecord").write_bytes(b"not a tfrecord file at all")
    key = "spark.sql.python.filterPushdown.enabled"
    before = spark.conf.get(key, None)
    spark.conf.set(key, "true")
    try:
        df = sparktf.read_tfrecords(spark, str(root), schema_hint="id bigint")
        assert [tuple(r) for r in df.filter("day = 2").collect()] == [(2, 2)]
        assert [tuple(r) for r in df.filter("day > 1 and id = 2").collect()] == [(2, 2)]
        with pytest.raises(TFRecordError, match="does not look like a TFRecord file"), reraise():
            df.filter("day = 1").collect()
        spark.conf.set(key, "false")
        unpruned = sparktf.read_tfrecords(spark, str(root), schema_hint="id bigint")
        with pytest.raises(TFRecordError, match="does not look like a TFRecord file"), \
                reraise():
            unpruned.filter("day = 2").collect()
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)
