"""The plain TensorFlow script sparktf is measured against (one process, no Spark).

tf.data.TFRecordDataset -> tf.io.parse_example on batches of 1024 -> a TF1 session fetching
``prediction``. Prints the count of each predicted class as JSON.

Usage: python bench/plain_tf.py MODEL_DIR FILE [FILE ...]
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main() -> None:
    export_dir, files = sys.argv[1], sys.argv[2:]
    spec = {"image": tf.io.FixedLenFeature([784], tf.float32)}
    dataset = (tf.data.TFRecordDataset(files, num_parallel_reads=2).batch(1024)
               .map(lambda b: tf.io.parse_example(b, spec)["image"],
                    num_parallel_calls=tf.data.AUTOTUNE)
               .prefetch(tf.data.AUTOTUNE))
    sess = tf.compat.v1.Session(graph=tf.Graph())
    tf.compat.v1.saved_model.loader.load(sess, ["serve"], export_dir)
    predict = sess.make_callable("prediction:0", ["x:0"])
    counts = np.zeros(10, dtype=np.int64)
    for images in dataset:
        counts += np.bincount(predict(images.numpy()), minlength=10)
    print(json.dumps(counts.tolist()))


if __name__ == "__main__":
    main()
