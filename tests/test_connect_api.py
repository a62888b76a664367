"""Spark Connect readiness without a server: no classic-only API outside the compat module,
sparktf's own Spark -> Arrow mapping, configure_session on a remote builder."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

import sparktf
from sparktf.errors import SchemaError
from sparktf.spark.session import ARROW_JAVA_OPTIONS, JAVA_OPTION_KEYS
from sparktf.tfrecord.types import arrow_schema

PACKAGE = Path(sparktf.__file__).parent
CLASSIC_ONLY = re.compile(
    r"\b(_jdf|_jvm|_jsc|_jsparkSession|sparkContext|_parse_datatype_string)\b"
    r"|pyspark\.sql\.pandas\.types"
)
#: The one module allowed to call classic-only API (each call with a Connect branch).
COMPAT = "spark/compat.py"
#: Known leftovers (none: schema hints are parsed with the public DataType.fromDDL).
KNOWN: set[tuple[str, str]] = set()


def test_no_classic_only_api_outside_the_compat_module() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        if name == COMPAT:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in CLASSIC_ONLY.finditer(line):
                if (name, match.group(0)) not in KNOWN:
                    found.append(f"{name}:{number}: {line.strip()}")
    assert not found, "classic-only PySpark API outside spark/compat.py:\n" + "\n".join(found)


def test_the_check_finds_a_use(tmp_path: Path) -> None:
    assert CLASSIC_ONLY.search("slots = spark.sparkContext.defaultParallelism")
    assert CLASSIC_ONLY.search("plan = df._jdf.queryExecution()")
    assert CLASSIC_ONLY.search("from pyspark.sql.pandas.types import to_arrow_schema")
    assert not CLASSIC_ONLY.search("SparkContext.addArchive in a docstring")


SCALARS = [T.BooleanType(), T.ByteType(), T.ShortType(), T.IntegerType(), T.LongType(),
           T.FloatType(), T.DoubleType(), T.StringType(), T.BinaryType()]


@pytest.mark.parametrize("scalar", SCALARS, ids=lambda t: t.simpleString())
def test_arrow_schema_matches_pyspark(scalar: T.DataType) -> None:
    schema = T.StructType([
        T.StructField("a", scalar, True),
        T.StructField("b", scalar, False),
        T.StructField("c", T.ArrayType(scalar, True), True),
        T.StructField("d", T.ArrayType(scalar, False), False),
        T.StructField("e", T.ArrayType(T.ArrayType(scalar, False), True), True),
        T.StructField("f", T.ArrayType(T.ArrayType(T.ArrayType(scalar))), True),
    ])
    assert arrow_schema(schema) == to_arrow_schema(schema)


def test_arrow_schema_refuses_other_types() -> None:
    schema = T.StructType([T.StructField("m", T.ArrayType(T.MapType(T.StringType(),
                                                                    T.LongType())))])
    with pytest.raises(SchemaError, match=r"column 'm' has type map<string,bigint>; .*"
                                          r"supports .*float.*arrays of them"):
        arrow_schema(schema)


@pytest.mark.parametrize("how", ["remote", "env"])
def test_configure_session_on_a_remote_builder(how: str, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    if how == "remote":
        builder = SparkSession.builder.remote("sc://127.0.0.1:15002")
    else:
        monkeypatch.setenv("SPARK_REMOTE", "sc://127.0.0.1:15002")
        builder = SparkSession.builder
    before = dict(builder._options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert sparktf.configure_session(builder) is builder
    assert builder._options == before  # nothing set: a client cannot change server JVMs
    assert len(caught) == 1 and caught[0].category is UserWarning
    message = str(caught[0].message)
    assert "Spark Connect" in message and "start-connect-server.sh" in message
    for key in JAVA_OPTION_KEYS:
        assert f"{key}={' '.join(ARROW_JAVA_OPTIONS)}" in message


def test_configure_session_on_a_classic_builder_sets_the_options() -> None:
    builder = sparktf.configure_session(SparkSession.builder.master("local[1]"))
    for key in JAVA_OPTION_KEYS:
        assert builder._options[key] == " ".join(ARROW_JAVA_OPTIONS)
