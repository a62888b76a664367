"""Pack files into tasks as Spark's file sources do: the one planner of every sparktf scan.

The ``tfrecord`` data source, :func:`sparktf.read_tfrecords`'s fused scoring (``sparktf
infer``) and the fused Parquet path all plan their tasks here, with Spark's own algorithm
(``FilePartition.maxSplitBytes`` and ``getFilePartitions``, ``PartitionedFileUtil.splitFiles``):

- ``maxSplit = min(maxPartitionBytes, max(openCostInBytes, total / minPartitionNum))`` where
  ``total`` sums every file's size plus ``openCostInBytes``;
- a splittable file larger than ``maxSplit`` is cut into pieces of ``maxSplit`` bytes (only
  uncompressed TFRecord files are splittable; gzip and zlib files are read whole);
- pieces, largest first, go into tasks by next fit: a task is closed when the next piece
  would take it past ``maxSplit``; each piece counts its length plus ``openCostInBytes``;
- sparktf then spreads the pieces over that many tasks, rounded up to a multiple of the task
  slots (``minPartitionNum``), each piece into the least loaded task (:func:`balance`): no
  task holds more than Spark's would, and each wave of tasks ends together.

So thousands of small files share a few tasks and one large file is read by several. The
functions are pure (no Spark, no I/O): the caller lists the files with their sizes and reads
the settings from the session on the driver (:class:`PackSettings`).

Examples
--------
>>> files = [FileInfo("a", 100), FileInfo("b", 10), FileInfo("c", 10)]
>>> [[s.path for s in task] for task in plan_tasks(files, PackSettings(
...     max_partition_bytes=120, open_cost_in_bytes=5, min_partitions=1))]
[['a'], ['b', 'c']]
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from sparktf.errors import SparkTFError

MIB = 1 << 20


@dataclass(frozen=True)
class FileInfo:
    """A listed data file: where, how many bytes, whether it may be cut into pieces, and
    the index of its ``key=value`` partition values (:mod:`sparktf.partitions`)."""

    path: str
    size: int
    splittable: bool = False
    partition: int = 0


@dataclass(frozen=True)
class Split:
    """Bytes ``start`` .. ``start + length`` of a file of ``size`` bytes. A split owns the
    records whose header starts in its range (:func:`sparktf.tfrecord.framing.locate`)."""

    path: str
    start: int
    length: int
    size: int
    partition: int = 0

    @property
    def whole(self) -> bool:
        """Whether the split is its whole file."""
        return self.start == 0 and self.length >= self.size

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass(frozen=True, kw_only=True)
class PackSettings:
    """Spark's settings of file packing, with Spark's defaults.

    Parameters
    ----------
    max_partition_bytes : int
        ``spark.sql.files.maxPartitionBytes`` (default 128 MiB): the most bytes of a task.
    open_cost_in_bytes : int
        ``spark.sql.files.openCostInBytes`` (default 4 MiB): what opening a file costs,
        counted as that many bytes.
    min_partitions : int
        ``spark.sql.files.minPartitionNum``, by default the session's default parallelism:
        the bytes of all files are spread over at least this many tasks when they would
        otherwise fill fewer.
    """

    max_partition_bytes: int = 128 * MIB
    open_cost_in_bytes: int = 4 * MIB
    min_partitions: int = 1

    def __post_init__(self) -> None:
        for name in ("max_partition_bytes", "open_cost_in_bytes", "min_partitions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (
                    0 if name == "open_cost_in_bytes" else 1):
                raise SparkTFError(f"{name}: expected a positive integer, found {value!r}")


def max_split_bytes(files: Sequence[FileInfo], settings: PackSettings) -> int:
    """The most bytes of one task (Spark's ``FilePartition.maxSplitBytes``).

    Examples
    --------
    >>> max_split_bytes([FileInfo("a", 1000)], PackSettings(min_partitions=4,
    ...                 max_partition_bytes=10_000, open_cost_in_bytes=100))
    275
    """
    total = sum(f.size + settings.open_cost_in_bytes for f in files)
    per_task = total // settings.min_partitions
    return min(settings.max_partition_bytes, max(settings.open_cost_in_bytes, per_task))


def split_files(files: Sequence[FileInfo], max_split: int) -> list[Split]:
    """Each file as one split, or, when splittable, pieces of at most ``max_split`` bytes;
    largest first (a stable sort: equal pieces keep the listing's order).

    Examples
    --------
    >>> [(s.path, s.start, s.length) for s in split_files(
    ...     [FileInfo("a", 5), FileInfo("b", 25, splittable=True)], 10)]
    [('b', 0, 10), ('b', 10, 10), ('a', 0, 5), ('b', 20, 5)]
    """
    splits = []
    for f in files:
        if f.splittable and f.size > max_split:
            splits += [Split(f.path, start, min(max_split, f.size - start), f.size, f.partition)
                       for start in range(0, f.size, max_split)]
        else:
            splits.append(Split(f.path, 0, f.size, f.size, f.partition))
    return sorted(splits, key=lambda s: -s.length)


def pack(splits: Sequence[Split], max_split: int, open_cost: int) -> list[tuple[Split, ...]]:
    """Next fit of ``splits`` (in their order) into tasks of about ``max_split`` bytes
    (Spark's ``FilePartition.getFilePartitions``).

    Examples
    --------
    >>> [len(t) for t in pack([Split("a", 0, 6, 6)] * 5, max_split=20, open_cost=4)]
    [2, 2, 1]
    """
    tasks: list[tuple[Split, ...]] = []
    current: list[Split] = []
    size = 0
    for split in splits:
        if current and size + split.length > max_split:
            tasks.append(tuple(current))
            current, size = [], 0
        size += split.length + open_cost
        current.append(split)
    if current:
        tasks.append(tuple(current))
    return tasks


def balance(splits: Sequence[Split], count: int, slots: int, max_split: int,
            open_cost: int) -> list[tuple[Split, ...]]:
    """``splits`` (largest first) each into the least loaded of ``count`` tasks rounded up
    to a multiple of ``slots`` (a new task only where the least loaded one would pass
    ``max_split``): tasks of about equal size, so that each wave of ``slots`` tasks ends
    together. Spark's next fit leaves the last task of a wave smaller (10 files of 31 MB:
    tasks of 4, 4 and 2 files on 2 slots, the second wave one task long).

    Examples
    --------
    >>> tasks = balance([Split(str(i), 0, 31, 31) for i in range(10)], count=3, slots=2,
    ...                 max_split=128, open_cost=0)
    >>> [len(t) for t in tasks]
    [3, 3, 2, 2]
    """
    wanted = max(1, -(-count // slots) * slots)
    heap = [(0, i) for i in range(wanted)]
    tasks: list[list[Split]] = [[] for _ in range(wanted)]
    for split in splits:
        load, index = heapq.heappop(heap)
        if tasks[index] and load + split.length > max_split:
            heapq.heappush(heap, (load, index))
            index, load = len(tasks), 0
            tasks.append([])
        tasks[index].append(split)
        heapq.heappush(heap, (load + split.length + open_cost, index))
    return [tuple(t) for t in tasks if t]


def plan_tasks(files: Sequence[FileInfo], settings: PackSettings) -> list[tuple[Split, ...]]:
    """The splits of each task: :func:`max_split_bytes`, :func:`split_files`, then Spark's
    :func:`pack` for the number of tasks and :func:`balance` to even them out."""
    if not files:
        return []
    limit = max_split_bytes(files, settings)
    splits = split_files(files, limit)
    count = len(pack(splits, limit, settings.open_cost_in_bytes))
    return balance(splits, count, settings.min_partitions, limit, settings.open_cost_in_bytes)
