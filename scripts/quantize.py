#!/usr/bin/env python
"""Quantise a photo (or an image Zarr store of any size) to N colours.

    python scripts/quantize.py photo.jpg --colors 64 --out photo64.png
    python scripts/quantize.py big.zarr --colors 64 --out big64.png --store big64.zarr \\
        --scheduler tcp://head:8786

Writes the quantised PNG (a preview when the image is too large for one file), a
side-by-side figure (original / K-means colours / random colours) with both PSNRs,
and with --store the full-resolution labels as Zarr tiles. A thin wrapper over
``daskmeans quantize``.
"""

from __future__ import annotations

import sys

from daskmeans import cli

if __name__ == "__main__":
    sys.exit(cli.main(["quantize", *sys.argv[1:]]))
