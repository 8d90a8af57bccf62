#!/usr/bin/env python
"""Sparse input in memory: seconds per KMeans fit on a TF-IDF matrix (scipy.sparse
CSR), daskmeans against scikit-learn's sparse Lloyd from the same initial centres.

Usage::

    python scripts/benchmark_sparse.py --data numpy,scipy,sklearn,pandas,dask --k 20 100

The corpus is on any machine offline: the docstrings (module, class and function) of
the installed packages named by ``--data``, read from their source files with
:mod:`ast` (nothing is imported), one document each. scikit-learn's
``TfidfVectorizer`` (``min_df=2``, ``max_df=0.5``, L2-normalised rows, ``--dtype``)
turns them into CSR rows. Each round (seeds 0 .. ``--seeds - 1``) draws initial centres
with scikit-learn's ``kmeans_plusplus`` and times, in turn, every contender's ``fit``
from those centres (``n_init=1``, the same ``max_iter`` and ``tol``):

- ``scikit-learn``: ``sklearn.cluster.KMeans(algorithm="lloyd")``, its sparse Lloyd
  (the reference);
- ``daskmeans lloyd``: ``daskmeans.KMeans(algorithm="lloyd")``, plain Lloyd through the
  compiled sparse kernel (what the default, ``"auto"``, runs on sparse rows);
- ``daskmeans bounded``: ``daskmeans.KMeans(algorithm="elkan")`` (distance bounds, the
  rows in doubt recomputed from their stored values).

The table gives the mean over the rounds of the seconds, the iterations and the
inertia, and the mean per-round ratio of the seconds to scikit-learn's, per fit and
per iteration. The fits may part: TF-IDF rows orthogonal to several centres lie at
``|x|^2 + |c|^2`` from each, ties that each implementation settles by the rounding of
its own ``|c|^2``, so the iterations can differ. Results go
out as JSON (``--out``). The numba kernels are compiled before the rounds
(``--no-warm-up``: not).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_results import add_out_argument, save_results

REFERENCE = "scikit-learn"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="numpy,scipy,sklearn,pandas,dask",
                   help="installed packages whose docstrings are the corpus (comma-separated)")
    p.add_argument("--docs", type=int, default=None, help="use at most this many documents")
    p.add_argument("--k", type=int, nargs="+", default=[20, 100])
    p.add_argument("--seeds", type=int, default=3, help="rounds, one seed each")
    p.add_argument("--max-iter", type=int, default=100)
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    p.add_argument("--no-warm-up", action="store_true")
    add_out_argument(p, "sparse")
    return p.parse_args(argv)


def _docstrings(path: Path) -> Iterator[str]:
    """The module, class and function docstrings of one source file."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc and len(doc.split()) >= 5:
                yield doc


def corpus(packages: list[str], limit: int | None = None) -> list[str]:
    """The docstrings of the installed ``packages``, file by file in sorted order."""
    docs: list[str] = []
    for name in packages:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            origin = Path(spec.origin) if spec is not None and spec.origin else None
            files = [origin] if origin is not None and origin.suffix == ".py" else []
        else:
            files = sorted(f for root in spec.submodule_search_locations
                           for f in Path(root).rglob("*.py"))
        for f in files:
            docs.extend(_docstrings(f))
            if limit is not None and len(docs) >= limit:
                return docs[:limit]
    return docs


def tfidf(docs: list[str], dtype: str) -> Any:
    """The documents' TF-IDF rows (CSR, unit L2 norm)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(min_df=2, max_df=0.5, dtype=np.dtype(dtype))
    return vec.fit_transform(docs).tocsr()


def contenders() -> dict[str, Callable[[Any, np.ndarray, argparse.Namespace], Any]]:
    """name -> fit(X, initial centres, args) returning the fitted model."""
    from sklearn.cluster import KMeans as SkKMeans

    from daskmeans import KMeans

    def common(C0: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
        return {"n_clusters": C0.shape[0], "init": C0, "n_init": 1,
                "max_iter": args.max_iter, "tol": args.tol}

    return {
        REFERENCE: lambda X, C0, a: SkKMeans(algorithm="lloyd", **common(C0, a)).fit(X),
        "daskmeans lloyd": lambda X, C0, a: KMeans(algorithm="lloyd", **common(C0, a)).fit(X),
        "daskmeans bounded": lambda X, C0, a: KMeans(algorithm="elkan", **common(C0, a)).fit(X),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from sklearn.cluster import kmeans_plusplus

    t0 = time.perf_counter()
    X = tfidf(corpus(args.data.split(","), args.docs), args.dtype)
    print(f"TF-IDF of {X.shape[0]} docstrings of {args.data}: {X.shape[1]} terms, "
          f"{X.nnz} stored values ({X.nnz / max(1, X.shape[0]):.1f} a row), "
          f"{time.perf_counter() - t0:.1f} s to build")
    if not args.no_warm_up:
        from daskmeans.kernels import warm_up

        warm_up()
    fits = contenders()
    records: list[dict[str, Any]] = []
    print("| k | contender | seconds | iterations | inertia | x scikit-learn | per iteration |")
    print("|---|---|---|---|---|---|---|")
    for k in args.k:
        for seed in range(args.seeds):
            C0, _ = kmeans_plusplus(X, k, random_state=seed)
            C0 = np.asarray(C0, dtype=X.dtype)
            for name, fit in fits.items():
                t = time.perf_counter()
                model = fit(X, C0, args)
                seconds = time.perf_counter() - t
                records.append({"contender": name, "round": seed, "k": k,
                                "seconds": seconds, "n_iter": int(model.n_iter_),
                                "inertia": float(model.inertia_)})
        for name in fits:
            mine = [r for r in records if r["k"] == k and r["contender"] == name]
            ref = [r for r in records if r["k"] == k and r["contender"] == REFERENCE]
            pairs = list(zip(mine, ref, strict=True))
            ratio = np.mean([a["seconds"] / b["seconds"] for a, b in pairs])
            per_iter = np.mean([(a["seconds"] / a["n_iter"]) / (b["seconds"] / b["n_iter"])
                                for a, b in pairs])
            print(f"| {k} | {name} | {np.mean([r['seconds'] for r in mine]):.3f} | "
                  f"{np.mean([r['n_iter'] for r in mine]):.1f} | "
                  f"{np.mean([r['inertia'] for r in mine]):.6g} | {ratio:.2f} | "
                  f"{per_iter:.2f} |")
    save_results("sparse", args, records, measure="seconds per fit", reference=REFERENCE,
                 rows=int(X.shape[0]), terms=int(X.shape[1]), nnz=int(X.nnz))


if __name__ == "__main__":
    main()
