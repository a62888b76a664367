"""The planner (``sparktf.planning``): Spark's packing of files into tasks, table-tested
without Spark, and its balancing over task slots."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sparktf.errors import SparkTFError
from sparktf.planning import (
    MIB,
    FileInfo,
    PackSettings,
    Split,
    balance,
    max_split_bytes,
    pack,
    plan_tasks,
    split_files,
)


@pytest.mark.parametrize(
    ("sizes", "settings", "expected"),
    [
        # Spark: min(maxPartitionBytes, max(openCost, (sum(size + openCost)) / minPartitionNum))
        ([1000], dict(max_partition_bytes=10_000, open_cost_in_bytes=100, min_partitions=4), 275),
        ([10 * MIB] * 10, dict(min_partitions=2), 70 * MIB),  # 10 * (10 + 4) MiB / 2
        ([1 * MIB] * 4, dict(min_partitions=8), 4 * MIB),  # never below the open cost
        ([1 << 40], dict(min_partitions=2), 128 * MIB),  # never above maxPartitionBytes
    ],
)
def test_max_split_bytes_is_sparks(sizes, settings, expected) -> None:
    files = [FileInfo(str(i), s) for i, s in enumerate(sizes)]
    assert max_split_bytes(files, PackSettings(**settings)) == expected


@pytest.mark.parametrize(
    ("files", "limit", "expected"),
    [
        ([FileInfo("a", 25, True)], 10, [("a", 0, 10), ("a", 10, 10), ("a", 20, 5)]),
        ([FileInfo("a", 25, False)], 10, [("a", 0, 25)]),  # gzip, zlib: whole
        ([FileInfo("a", 10, True)], 10, [("a", 0, 10)]),  # not larger than a task: whole
        ([FileInfo("s", 3), FileInfo("b", 30, True)], 10,  # largest first, stable
         [("b", 0, 10), ("b", 10, 10), ("b", 20, 10), ("s", 0, 3)]),
    ],
)
def test_split_files(files, limit, expected) -> None:
    assert [(s.path, s.start, s.length) for s in split_files(files, limit)] == expected


@pytest.mark.parametrize(
    ("lengths", "limit", "cost", "expected"),
    [
        ([6, 6, 6, 6, 6], 20, 4, [2, 2, 1]),  # Spark's getFilePartitions: next fit
        ([30, 5, 5], 20, 0, [1, 2]),  # a piece larger than a task is a task of its own
        ([5] * 10, 100, 0, [10]),
        ([5] * 10, 12, 1, [2, 2, 2, 2, 2]),  # the open cost counts after each piece
    ],
)
def test_pack_is_sparks_next_fit(lengths, limit, cost, expected) -> None:
    splits = [Split(str(i), 0, n, n) for i, n in enumerate(lengths)]
    assert [len(t) for t in pack(splits, limit, cost)] == expected


def test_four_thousand_small_files_share_a_few_tasks() -> None:
    files = [FileInfo(f"part-{i:05d}", 80_000) for i in range(4000)]
    tasks = plan_tasks(files, PackSettings(open_cost_in_bytes=64 << 10, min_partitions=2))
    assert len(tasks) % 2 == 0 and len(tasks) <= 8
    assert sorted(s.path for t in tasks for s in t) == [f.path for f in files]
    spark_like = plan_tasks(files, PackSettings(min_partitions=2))  # Spark's 4 MiB open cost
    assert len(spark_like) >= 120


def test_a_one_gigabyte_file_is_read_by_sixteen_tasks_at_64_mib() -> None:
    size = 1 << 30
    tasks = plan_tasks([FileInfo("big", size, True)],
                       PackSettings(max_partition_bytes=64 * MIB, min_partitions=2))
    assert len(tasks) == 16 and all(len(t) == 1 for t in tasks)
    starts = sorted(t[0].start for t in tasks)
    assert starts == list(range(0, size, 64 * MIB))


@given(st.lists(st.tuples(st.integers(0, 10_000), st.booleans()), max_size=40),
       st.integers(1, 5_000), st.integers(0, 500), st.integers(1, 6))
def test_every_byte_of_every_file_is_in_one_task(files, limit, cost, slots) -> None:
    infos = [FileInfo(str(i), size, splittable) for i, (size, splittable) in enumerate(files)]
    tasks = plan_tasks(infos, PackSettings(max_partition_bytes=limit, open_cost_in_bytes=cost,
                                           min_partitions=slots))
    covered: dict[str, list[tuple[int, int]]] = {}
    for task in tasks:
        assert task, "no empty task"
        for split in task:
            covered.setdefault(split.path, []).append((split.start, split.end))
    for info in infos:
        ranges = sorted(covered[info.path])
        assert ranges[0][0] == 0 and ranges[-1][1] == info.size
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))  # no gap, no overlap
    settings = PackSettings(max_partition_bytes=limit, open_cost_in_bytes=cost,
                            min_partitions=slots)
    most = max_split_bytes(infos, settings)
    assert len(tasks) >= len(pack(split_files(infos, most), most, cost))  # never fewer
    for task in tasks:  # and none larger than Spark's, but for a single large piece
        assert len(task) == 1 or sum(s.length for s in task) + cost * (len(task) - 1) <= most


def test_balancing_evens_the_tasks_of_a_wave() -> None:
    splits = [Split(str(i), 0, 31, 31) for i in range(10)]
    assert [len(t) for t in pack(splits, 128, 0)] == [4, 4, 2]  # Spark: a short last wave
    balanced = balance(splits, count=3, slots=2, max_split=128, open_cost=0)
    assert [len(t) for t in balanced] == [3, 3, 2, 2]
    assert all(sum(s.length for s in t) <= 128 for t in balanced)


@pytest.mark.parametrize("bad", [0, -1, True, "1"])
def test_settings_are_checked(bad) -> None:
    with pytest.raises(SparkTFError, match="max_partition_bytes: expected a positive integer"):
        PackSettings(max_partition_bytes=bad)
