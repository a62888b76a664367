"""The strongest plain TensorFlow script: graph mode, the input pipeline in the model's graph.

A one-shot iterator over tf.data.TFRecordDataset -> batch(1024) -> map(tf.io.parse_example)
-> prefetch(2), whose output is fed to the model's input tensor ``x:0`` inside the same TF1
graph (``input_map`` at load time); one ``session.run`` per batch, no Python per record.
Prints the count of each predicted class as JSON.

Usage: python bench/plain_tf_graph.py MODEL_DIR FILE [FILE ...]
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main() -> None:
    export_dir, files = sys.argv[1], sys.argv[2:]
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        spec = {"image": tf.io.FixedLenFeature([784], tf.float32)}
        dataset = (tf.data.TFRecordDataset(files, num_parallel_reads=2).batch(1024)
                   .map(lambda b: tf.io.parse_example(b, spec)["image"],
                        num_parallel_calls=tf.data.AUTOTUNE)
                   .prefetch(2))
        images = v1.data.make_one_shot_iterator(dataset).get_next()
        sess = v1.Session(graph=graph)
        v1.saved_model.loader.load(sess, ["serve"], export_dir, input_map={"x:0": images})
        prediction = graph.get_tensor_by_name("prediction:0")
    counts = np.zeros(10, dtype=np.int64)
    while True:
        try:
            counts += np.bincount(sess.run(prediction), minlength=10)
        except tf.errors.OutOfRangeError:
            break
    print(json.dumps(counts.tolist()))


if __name__ == "__main__":
    main()
