"""Spark glue: the ``tfrecord`` data source, its driver-side API and error translation."""
