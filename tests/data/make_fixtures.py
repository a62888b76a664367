"""Regenerate the small binary fixtures in this folder with TensorFlow's own writer.

Run: .venv/bin/python tests/data/make_fixtures.py
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

HERE = Path(__file__).parent


def example(i: int) -> tf.train.Example:
    feature = {
        "id": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
        "vals": tf.train.Feature(
            float_list=tf.train.FloatList(value=[0.5 * k for k in range(i % 3 + 1)])),
        "tags": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[b"t%d" % k for k in range(i)])),
    }
    if i != 3:
        feature["name"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"n{i}".encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def sequence(i: int) -> tf.train.SequenceExample:
    seq = tf.train.SequenceExample()
    seq.context.feature["id"].int64_list.value.append(i)
    tokens = seq.feature_lists.feature_list["tokens"]
    for step in range(i + 1):
        tokens.feature.add().int64_list.value.extend(range(step + 1))
    return seq


def main() -> None:
    with tf.io.TFRecordWriter(str(HERE / "examples.tfrecord")) as w:
        for i in range(5):
            w.write(example(i).SerializeToString())
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(str(HERE / "examples.tfrecord.gz"), options) as w:
        for i in range(5):
            w.write(example(i).SerializeToString())
    with tf.io.TFRecordWriter(str(HERE / "sequence.tfrecord")) as w:
        for i in range(3):
            w.write(sequence(i).SerializeToString())


if __name__ == "__main__":
    main()
