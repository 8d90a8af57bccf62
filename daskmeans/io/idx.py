"""IDX files (the MNIST format): headers parsed, contents streamed block by block
(plain or gzip), the four files of an MNIST-format dataset found in a folder.

Every malformed input raises :class:`~daskmeans.io.errors.IDXFormatError` naming the
file and the problem (a wrong magic number, a truncated body, trailing bytes).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

from .errors import IDXFormatError

__all__ = ["DEFAULT_CHUNK_ROWS", "IDX_DTYPES", "MNIST_FILES", "file_checksums",
           "find_idx_files", "iter_idx", "read_idx", "read_idx_header"]

PathLike = str | os.PathLike[str]

#: IDX type code -> numpy dtype (big-endian as in the format).
IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: The four files of an MNIST-format dataset, by (split, kind).
MNIST_FILES: dict[tuple[str, str], str] = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}

#: Rows per block read from an IDX file, and per chunk of a dataset store.
DEFAULT_CHUNK_ROWS = 10_000


def _open_maybe_gzip(path: Path) -> IO[bytes]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise IDXFormatError(f"{path}: not a regular file")
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


def _read_exact(f: IO[bytes], n: int, path: Path, what: str) -> bytes:
    parts = []
    got = 0
    try:
        while got < n:  # bounded reads: a corrupt header cannot ask for terabytes at once
            piece = f.read(min(n - got, 64 << 20))
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise IDXFormatError(f"{path}: corrupt compressed data while reading {what}: {e}") from e
    buf = b"".join(parts)
    if len(buf) != n:
        raise IDXFormatError(f"{path}: truncated: expected {n} bytes of {what}, got {len(buf)}")
    return buf


def _check_size(path: Path, expected: int) -> None:
    """Compare the header's byte count with the file size (gzip: its ISIZE trailer)."""
    size = path.stat().st_size
    with open(path, "rb") as raw:
        if raw.read(2) == b"\x1f\x8b":
            if size < 18:
                raise IDXFormatError(f"{path}: truncated gzip file ({size} bytes)")
            raw.seek(-4, os.SEEK_END)
            isize = struct.unpack("<I", raw.read(4))[0]
            # ISIZE is the uncompressed size mod 2**32 (only the last member's for a
            # multi-member file, so only a single-member mismatch is conclusive)
            if isize != expected % (1 << 32) and isize < expected:
                raise IDXFormatError(
                    f"{path}: header declares {expected} bytes but the gzip trailer says "
                    f"{isize}: truncated, corrupt, or a wrong header"
                )
            return
    if size != expected:
        what = "truncated" if size < expected else "trailing bytes after the data"
        raise IDXFormatError(
            f"{path}: {what}: header declares {expected} bytes, file has {size}"
        )


def read_idx_header(f: IO[bytes], path: Path) -> tuple[np.dtype[Any], tuple[int, ...]]:
    """Parse an IDX header from an open binary stream.

    Returns the item dtype and the shape. Raises :class:`IDXFormatError` on a bad magic
    number, an unknown type code or a zero dimension count.
    """
    magic = _read_exact(f, 4, path, "the magic number")
    if magic[0] != 0 or magic[1] != 0:
        raise IDXFormatError(
            f"{path}: wrong magic number 0x{magic.hex()}: not an IDX file "
            "(expected 0x0000TTNN: two zero bytes, type code, dimension count)"
        )
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        raise IDXFormatError(f"{path}: unknown IDX type code 0x{code:02x}")
    if ndim == 0:
        raise IDXFormatError(f"{path}: IDX header declares 0 dimensions")
    dims = struct.unpack(f">{ndim}I", _read_exact(f, 4 * ndim, path, "the dimensions"))
    return IDX_DTYPES[code], tuple(int(d) for d in dims)


def iter_idx(
    path: PathLike, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[tuple[np.dtype[Any], tuple[int, ...], np.ndarray]]:
    """Stream an IDX file (plain or gzip) in blocks of ``chunk_rows`` rows.

    Memory is bounded by one block, not by the file. Yields ``(dtype, shape, block)``
    where ``shape`` is the full shape from the header. After the last row the file must
    end: trailing bytes or a short file raise :class:`IDXFormatError`.

    Examples
    --------
    An IDX file of five uint8 labels (type code 0x08, one dimension), read two rows at
    a time:

    >>> import pathlib, shutil, struct, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "labels-idx1-ubyte").write_bytes(
    ...     struct.pack(">BBBBI", 0, 0, 0x08, 1, 5) + bytes([7, 2, 1, 0, 4]))
    >>> for dtype, shape, block in iter_idx(d / "labels-idx1-ubyte", chunk_rows=2):
    ...     print(shape, block.tolist())
    (5,) [7, 2]
    (5,) [1, 0]
    (5,) [4]
    >>> shutil.rmtree(d)
    """
    path = Path(path)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows!r}")
    with _open_maybe_gzip(path) as f:
        dtype, shape = read_idx_header(f, path)
        _check_size(path, 4 + 4 * len(shape) + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        row_items = int(np.prod(shape[1:], dtype=np.int64))
        row_bytes = row_items * dtype.itemsize
        n = shape[0]
        for start in range(0, n, chunk_rows):
            rows = min(chunk_rows, n - start)
            buf = _read_exact(f, rows * row_bytes, path, f"rows {start}..{start + rows - 1}")
            block = np.frombuffer(buf, dtype=dtype).reshape((rows, *shape[1:]))
            yield dtype, shape, block.astype(dtype.newbyteorder("="), copy=False)
        try:
            extra = f.read(1)
        except (OSError, EOFError, zlib.error) as e:
            raise IDXFormatError(f"{path}: corrupt compressed data at the end: {e}") from e
        if extra:
            raise IDXFormatError(
                f"{path}: {shape} of {dtype} is followed by trailing bytes: "
                "the byte count does not match the header"
            )
        if n == 0:
            yield dtype, shape, np.empty(shape, dtype=dtype.newbyteorder("="))


def read_idx(path: PathLike) -> np.ndarray:
    """Read a whole IDX file into memory (small files only; see :func:`iter_idx`).

    Examples
    --------
    >>> import gzip, pathlib, shutil, struct, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with gzip.open(d / "labels-idx1-ubyte.gz", "wb") as f:
    ...     _ = f.write(struct.pack(">BBBBI", 0, 0, 0x08, 1, 3) + bytes([7, 2, 1]))
    >>> labels = read_idx(d / "labels-idx1-ubyte.gz")
    >>> labels.shape, labels.dtype, labels.tolist()
    ((3,), dtype('uint8'), [7, 2, 1])
    >>> shutil.rmtree(d)
    """
    blocks = [b for _, _, b in iter_idx(path, chunk_rows=1 << 30)]
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def file_checksums(path: PathLike) -> dict[str, Any]:
    """md5 and sha256 (hex strings) and size (int) of a file's bytes, streamed."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            md5.update(block)
            sha.update(block)
    return {"md5": md5.hexdigest(), "sha256": sha.hexdigest(), "size": os.path.getsize(path)}


def find_idx_files(directory: PathLike) -> dict[tuple[str, str], Path]:
    """Locate the MNIST-format files in a directory (``.gz`` or uncompressed names)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory")
    found: dict[tuple[str, str], Path] = {}
    for key, stem in MNIST_FILES.items():
        for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
            p = directory / name
            if p.is_file():
                found[key] = p
                break
    return found

