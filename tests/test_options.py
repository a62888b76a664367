"""Typed reader/writer settings and schema hints: names, defaults, refusals (no Spark)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sparktf.errors import SchemaError, TFRecordError
from sparktf.spark.hints import hint_fields, merged_ddl, quoted_ddl
from sparktf.tfrecord.options import ReadSettings, WriteSettings


def test_defaults_live_in_one_place() -> None:
    settings = ReadSettings()
    assert (settings.record_type, settings.compression, settings.sample_records,
            settings.batch_size) == ("Example", "auto", 1000, 4096)
    assert WriteSettings().compression == "none"


@pytest.mark.parametrize("name", ["batchSize", "batch_size", "BATCHSIZE", "batchsize"])
def test_names_in_any_spelling(name: str) -> None:
    assert ReadSettings.from_options({name: "512"}).batch_size == 512


def test_values_are_normalised() -> None:
    settings = ReadSettings.from_options(
        {"recordType": "sequenceexample", "compression": "GZIP", "ignoreCorruptFiles": "Yes",
         "ignore_corrupt_records": False, "path": "/ignored/by/settings"})
    assert (settings.record_type, settings.compression) == ("SequenceExample", "gzip")
    assert settings.ignore_corrupt_files is True and settings.ignore_corrupt_records is False


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ignoreCorruptRecord": True},
         r"unknown read option 'ignoreCorruptRecord'; closest: 'ignoreCorruptRecords'; "
         r"accepted: recordType, compression, schemaHint, sampleRecords, batchSize"),
        ({"batchsise": 3}, r"unknown read option 'batchsise'; closest: 'batchSize'"),
        ({"ignoreCorruptFiles": "ture"},
         r"option ignoreCorruptFiles: expected true or false, found 'ture'"),
        ({"batchSize": "0"}, r"option batchSize: expected a positive integer, found '0'"),
        ({"sampleRecords": "many"}, r"option sampleRecords: expected a positive integer"),
        ({"recordType": "Examples"},
         r"option recordType: expected one of Example, SequenceExample, ByteArray, "
         r"found 'Examples'"),
        ({"compression": "bz2"},
         r"option compression: expected one of auto, none, gzip, zlib, found 'bz2'"),
    ],
)
def test_bad_read_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(TFRecordError, match=message):
        ReadSettings.from_options(options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"compression": "auto"},
         r"option compression: expected one of none, gzip, zlib, found 'auto'"),
        ({"schemaHint": "x int"}, r"unknown write option 'schemaHint'"),
    ],
)
def test_bad_write_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(TFRecordError, match=message):
        WriteSettings.from_options(options)


def test_settings_round_trip_through_spark_options() -> None:
    settings = ReadSettings(batch_size=7, ignore_corrupt_records=True, schema_hint="a int")
    assert ReadSettings.from_options(settings.to_options()) == settings


@pytest.mark.parametrize(
    ("hint", "ddl"),
    [
        ("image/encoded binary, image/class/label bigint",
         "`image/encoded` binary, `image/class/label` bigint"),
        ("struct<image.format:string,class-id:array<bigint>>",
         "`image.format` string, `class-id` array<bigint>"),
        ("label: bigint", "`label` bigint"),
        ("`a``b` int, m map<string,int>", "`a``b` int, `m` map<string,int>"),
        ("  vals   array<float>  NOT NULL ", "`vals` array<float>  NOT NULL"),
    ],
)
def test_hint_names_are_quoted(hint: str, ddl: str) -> None:
    assert quoted_ddl(hint) == ddl


@pytest.mark.parametrize(
    ("hint", "message"),
    [
        ("array<float>", r"expected a struct of named fields .* found the bare type"),
        ("struct<image:array<float>", r"is malformed: '<' or '\(' is not closed"),
        ("image", r"field 'image' has no type; write it as 'image binary'"),
        ("a int, a bigint", r"names 'a' twice"),
        ("`a int", r"is malformed: a backtick is not closed"),
        ("", r"is empty"),
    ],
)
def test_bad_hints(hint: str, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        hint_fields(hint)


def test_merge_keeps_hint_order_and_skips_hinted_names() -> None:
    merged = merged_ddl("b binary, a int", [("a", "bigint"), ("c", "string")])
    assert merged == "`b` binary, `a` int, `c` string"


NAMES = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1,
                max_size=12).filter(lambda n: n.strip() == n)


@given(st.lists(NAMES, min_size=1, max_size=5, unique=True))
def test_any_feature_name_survives_quoting(names: list[str]) -> None:
    hint = ", ".join("`" + n.replace("`", "``") + "` int" for n in names)
    assert [name for name, _ in hint_fields(hint)] == names
