"""Regenerate tests/data: the first 2,000 images and labels of MNIST's test split.

The suite reads these files so that a fresh clone runs every MNIST test with no
download and no data outside the repository. The rows are the originals, byte for
byte; only the IDX headers' row counts change. The gzip streams carry no file name
and a zero time stamp, so a rerun on the same files writes the same bytes (the md5s
listed in tests/data/README.md).

Usage::

    python scripts/make_test_data.py [SOURCE_DIR] [--rows 2000]

SOURCE_DIR holds MNIST's ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz``
(default ``../shared/data/mnist``).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import struct
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def head_of_idx(raw: bytes, rows: int) -> bytes:
    """The IDX file ``raw`` cut to its first ``rows`` rows, its header's count updated."""
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError("not an unsigned-byte IDX file")
    dims = list(struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim]))
    if dims[0] < rows:
        raise ValueError(f"the file has {dims[0]} rows, fewer than {rows}")
    row_bytes = 1
    for d in dims[1:]:
        row_bytes *= d
    start = 4 + 4 * ndim
    dims[0] = rows
    return raw[:4] + struct.pack(f">{ndim}I", *dims) + raw[start:start + rows * row_bytes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default=str(ROOT.parent / "shared/data/mnist"))
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--out", default=str(ROOT / "tests" / "data"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        with gzip.open(Path(args.source) / name, "rb") as f:
            data = head_of_idx(f.read(), args.rows)
        # filename="" and mtime=0: the same input gives the same bytes
        with open(out / name, "wb") as raw, gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
            gz.write(data)
        print(f"{hashlib.md5((out / name).read_bytes()).hexdigest()}  {name}")


if __name__ == "__main__":
    main()
