"""TFRecord format I/O: framing, compression, Example encoding and bulk decoding.

Nothing here imports Spark; this code runs inside Spark's Python workers.
"""
