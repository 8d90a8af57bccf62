#!/usr/bin/env python
"""The tutorials' table: K in 10, 16, 36, 64, 144, 256 on MNIST, with figures.

    python scripts/mnist_sweep.py --source ../shared/data/mnist --out sweep/
    python scripts/mnist_sweep.py --scheduler tcp://head:8786 --out sweep/   # on a cluster

Fits on the training split (or, when only the test split is present, on the test
split, as the tutorials also do), scores every K (inertia, sampled silhouette,
homogeneity, purity: the majority accuracy on that split) and writes
sweep.csv/.json/.md, sweep.png (scores, inertia with its Kneedle knee, silhouette vs K)
and elbow.png, and prints a recommended K. A thin wrapper over ``daskmeans sweep``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from daskmeans import cli, datasets


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", help="directory with the MNIST IDX files (else download)")
    p.add_argument("--out", default="sweep")
    p.add_argument("--k", default="10,16,36,64,144,256")
    p.add_argument("--algorithm", choices=["minibatch", "lloyd"], default="minibatch")
    args, rest = p.parse_known_args()
    store = datasets.fetch_mnist(source=args.source) if args.source else datasets.fetch_mnist()
    import zarr

    split = "train" if "train" in zarr.open_group(store, mode="r").attrs["splits"] else "test"
    out = Path(args.out)
    return cli.main(["sweep", str(store), "--split", split, "--k", args.k, "--algorithm",
                     args.algorithm, "--out", str(out), *rest])


if __name__ == "__main__":
    sys.exit(main())
