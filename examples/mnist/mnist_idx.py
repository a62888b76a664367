"""Read MNIST digits from the standard IDX files (optionally gzip-compressed) with numpy.

The IDX format is a big-endian header -- a magic number whose third byte is the element
type (0x08: unsigned byte) and whose fourth byte is the number of dimensions, then one
32-bit size per dimension -- followed by the raw elements. MNIST images have magic 2051
(``n x 28 x 28``) and labels magic 2049 (``n``).

Examples
--------
>>> images, labels = load_mnist(IMAGES, LABELS)  # doctest: +SKIP
>>> images.shape, labels.shape  # doctest: +SKIP
((10000, 28, 28), (10000,))
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
IMAGES = HERE / "data" / "digits-10k-images-idx3-ubyte.gz"
LABELS = HERE / "data" / "digits-10k-labels-idx1-ubyte.gz"

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049


class IDXError(ValueError):
    """An IDX file is truncated, has the wrong magic number or the wrong shape."""


def read_idx(path: str | Path, *, magic: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes, checking its magic number and its length.

    Parameters
    ----------
    path : str or Path
        The file; a name ending in ``.gz`` is decompressed.
    magic : int
        The expected magic number (2051 for images, 2049 for labels).

    Returns
    -------
    numpy.ndarray
        A ``uint8`` array of the shape the header declares.

    Examples
    --------
    >>> read_idx(LABELS, magic=LABELS_MAGIC).shape  # doctest: +SKIP
    (10000,)
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise IDXError(f"{path}: cannot read IDX file ({exc})") from exc
    if len(data) < 4:
        raise IDXError(f"{path}: {len(data)} bytes, too short for an IDX header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise IDXError(f"{path}: expected IDX magic number {magic}, found {found}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"{path}: header declares {ndim} dimensions but the file ends first")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise IDXError(
            f"{path}: header declares shape {shape} ({expected} bytes of data), "
            f"found {len(data) - header} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_mnist(
    images: str | Path = IMAGES, labels: str | Path = LABELS
) -> tuple[np.ndarray, np.ndarray]:
    """Read MNIST images (``n x 28 x 28`` uint8) and labels (``n`` uint8, 0-9), checked.

    Examples
    --------
    >>> x, y = load_mnist()  # doctest: +SKIP
    >>> x.shape, y.shape, int(y.max())  # doctest: +SKIP
    ((10000, 28, 28), (10000,), 9)
    """
    x = read_idx(images, magic=IMAGES_MAGIC)
    y = read_idx(labels, magic=LABELS_MAGIC)
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise IDXError(f"{images}: expected images of shape (n, 28, 28), found {x.shape}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise IDXError(
            f"{labels}: expected {x.shape[0]} labels (one per image in {images}), "
            f"found shape {y.shape}"
        )
    if y.size and int(y.max()) > 9:
        raise IDXError(f"{labels}: expected digits 0-9, found label {int(y.max())}")
    return x, y


def to_features(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten and scale images to ``float32`` 0-1 (``n x 784``); one-hot labels (``n x 10``).

    Examples
    --------
    >>> import numpy as np
    >>> x, y = to_features(np.full((1, 28, 28), 255, np.uint8), np.array([3], np.uint8))
    >>> x.shape, float(x.max()), y.tolist()
    ((1, 784), 1.0, [[0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    """
    x = images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)
    y = np.eye(10, dtype=np.float32)[labels]
    return x, y
