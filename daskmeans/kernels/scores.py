"""Scoring a model: label validation, contingency tables (mergeable across blocks),
a block's objective against centres, and gathering rows by global index."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .bisect import TreeCentres, tree_assign
from .common import Centres, is_sparse, stack_rows, weighted_sse
from .medians import L1Centres
from .metric import Metric, as_metric


class LabelError(ValueError):
    """Labels that are not non-negative integers (names the argument and the value)."""


def as_label_codes(block: np.ndarray, name: str) -> np.ndarray:
    """Validate one block of labels and return it as int64.

    Accepts integer dtypes and floats with integral values; rejects NaN, fractions and
    negative values with a :class:`LabelError` naming ``name``.
    """
    a = np.asarray(block)
    if a.ndim != 1:
        raise LabelError(f"{name} must be 1-D, got shape {a.shape}")
    if a.dtype.kind == "f":
        if np.isnan(a).any():
            raise LabelError(f"{name} contains NaN")
        if not np.all(a == np.round(a)):
            bad = a[a != np.round(a)][0]
            raise LabelError(f"{name} must hold integers, got fractional value {bad!r}")
    elif a.dtype.kind == "b":
        a = a.astype(np.int64)
    elif a.dtype.kind not in "iu":
        raise LabelError(f"{name} must be integer labels, got dtype {a.dtype}")
    if a.size and a.min() < 0:
        raise LabelError(f"{name} must be non-negative, got {a.min()!r}")
    return a.astype(np.int64)


#: a dense per-chunk table is used while (max_true + 1) * (max_pred + 1) stays below this.
DENSE_TABLE_CELLS = 1 << 22


@dataclass
class PairTable:
    """Contingency counts of one or more chunks, added with ``+``.

    Dense (``table[t, p]`` for codes up to the maxima seen) while the label values are
    small, as in every clustering here; sparse (distinct pairs + counts) otherwise.
    """

    table: np.ndarray | None  # dense (max_t + 1, max_p + 1) int64
    pairs: np.ndarray | None = None  # sparse (m, 2) int64
    counts: np.ndarray | None = None  # sparse (m,) int64

    def to_sparse(self) -> tuple[np.ndarray, np.ndarray]:
        if self.table is None:
            assert self.pairs is not None and self.counts is not None
            return self.pairs, self.counts
        t, p = np.nonzero(self.table)
        return np.stack([t, p], axis=1).astype(np.int64), self.table[t, p]

    def __add__(self, other: PairTable) -> PairTable:
        if self.table is not None and other.table is not None:
            shape = tuple(max(a, b) for a, b in zip(self.table.shape, other.table.shape,
                                                     strict=True))
            if shape[0] * shape[1] <= DENSE_TABLE_CELLS:
                out = np.zeros(shape, dtype=np.int64)
                out[: self.table.shape[0], : self.table.shape[1]] += self.table
                out[: other.table.shape[0], : other.table.shape[1]] += other.table
                return PairTable(out)
        (pa, ca), (pb, cb) = self.to_sparse(), other.to_sparse()
        pairs, counts = np.concatenate([pa, pb]), np.concatenate([ca, cb])
        uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
        return PairTable(None, uniq, np.bincount(inv.ravel(), weights=counts,
                                                 minlength=uniq.shape[0]).astype(np.int64))

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(classes, clusters, table) over the label values that occur."""
        pairs, counts = self.to_sparse()
        classes, ti = np.unique(pairs[:, 0], return_inverse=True)
        clusters, pi = np.unique(pairs[:, 1], return_inverse=True)
        table = np.zeros((classes.shape[0], clusters.shape[0]), dtype=np.int64)
        table[ti.ravel(), pi.ravel()] = counts
        return classes, clusters, table


def pair_table(labels_true: np.ndarray, labels_pred: np.ndarray) -> PairTable:
    """Contingency counts of one block (validated), dense by ``bincount`` when small.

    Examples
    --------
    >>> pair_table(np.array([0, 0, 2]), np.array([1, 1, 0])).table
    array([[0, 2],
           [0, 0],
           [1, 0]])

    A predicted label of -1 (a sample masked as nodata, or DBSCAN's noise) takes no
    part: the row is left out of the table.

    >>> pair_table(np.array([0, 0, 2]), np.array([1, -1, 0])).table
    array([[0, 1],
           [0, 0],
           [1, 0]])
    """
    raw = np.asarray(labels_pred)
    if raw.dtype.kind in "if" and np.shape(labels_true) == raw.shape and (raw == -1).any():
        keep = raw != -1
        labels_true, labels_pred = np.asarray(labels_true)[keep], raw[keep]
    t = as_label_codes(labels_true, "labels_true")
    p = as_label_codes(labels_pred, "labels_pred")
    if t.shape != p.shape:
        raise LabelError(
            f"labels_true and labels_pred must have the same length, got {t.shape[0]} "
            f"and {p.shape[0]}"
        )
    if t.size == 0:
        return PairTable(np.zeros((0, 0), np.int64))
    nt, npred = int(t.max()) + 1, int(p.max()) + 1
    if nt * npred <= DENSE_TABLE_CELLS:
        flat = np.bincount(t * npred + p, minlength=nt * npred)
        return PairTable(flat.reshape(nt, npred).astype(np.int64))
    uniq, counts = np.unique(np.stack([t, p], axis=1), axis=0, return_counts=True)
    return PairTable(None, uniq, counts.astype(np.int64))


@dataclass
class Scored:
    """What one chunk contributes to scoring a model; added with ``+``."""

    sse: float  # weighted sum of squared (L1 for manhattan) distances to the nearest centre
    table: PairTable | None = None  # contingency counts against true labels, if given

    def __add__(self, other: Scored) -> Scored:
        table = None
        if self.table is not None and other.table is not None:
            table = self.table + other.table
        return Scored(self.sse + other.sse, table)


def score_block(
    X: np.ndarray,
    C: np.ndarray | Centres | L1Centres | TreeCentres,
    weights: np.ndarray | None = None,
    labels_true: np.ndarray | None = None,
    metric: str | Metric = "euclidean",
) -> Scored:
    """Assign a chunk: its (weighted) SSE (sum of L1 distances for
    ``metric="manhattan"``; rows to the leaf of a bisecting tree they reach for
    :class:`TreeCentres`) and, given true labels, its contingency counts (rows of zero
    weight, such as nodata samples, left out).

    Evaluating a model needs both; one assignment of each chunk gives both.

    Examples
    --------
    >>> s = score_block(np.array([[0., 0.], [0., 2.], [9., 9.]]),
    ...                 np.array([[0., 1.], [9., 9.]]), labels_true=np.array([3, 3, 5]))
    >>> s.sse, s.table.table[3:].tolist()
    (2.0, [[2, 0], [0, 0], [0, 1]])
    """
    if isinstance(C, TreeCentres):
        labels, sq = tree_assign(X, C)
    else:
        labels, sq = as_metric(metric).assign(X, C)
    if labels_true is not None and weights is not None:  # zero weight (nodata): no part
        labels = np.where(weights > 0, labels, np.int32(-1))
    table = None if labels_true is None else pair_table(labels_true, labels)
    return Scored(weighted_sse(sq, weights), table)



@dataclass
class Gathered:
    """Rows picked by global index from one or more blocks, with the values of the
    vectors read alongside (labels); added with ``+`` (concatenated)."""

    index: np.ndarray  # (m,) int64
    rows: Any  # (m, d), dense or CSR
    values: dict[str, np.ndarray]  # name -> (m,)

    def __add__(self, other: Gathered) -> Gathered:
        return Gathered(np.concatenate([self.index, other.index]),
                        stack_rows([self.rows, other.rows]),
                        {k: np.concatenate([v, other.values[k]]) for k, v in self.values.items()})

    def sorted(self) -> Gathered:
        order = np.argsort(self.index, kind="stable")
        return Gathered(self.index[order], self.rows[order],
                        {k: v[order] for k, v in self.values.items()})


def gather(X: np.ndarray, index: np.ndarray, *, offset: int = 0,
           **vectors: np.ndarray) -> Gathered:
    """The rows of one block whose global indices are in ``index`` (sorted), and the
    same entries of each of ``vectors`` (the block's slices of (n,) arrays).

    Examples
    --------
    >>> g = gather(np.arange(6.0).reshape(3, 2), np.array([1, 4, 9]), offset=3,
    ...            labels=np.array([7, 8, 9]))
    >>> g.index.tolist(), g.rows.tolist(), g.values["labels"].tolist()
    ([4], [[2.0, 3.0]], [8])
    """
    lo, hi = np.searchsorted(index, [offset, offset + X.shape[0]])
    local = np.asarray(index[lo:hi]) - offset
    rows = X[local] if is_sparse(X) else np.array(X[local])  # CSR rows stay CSR
    return Gathered(np.asarray(index[lo:hi], dtype=np.int64), rows,
                    {k: np.asarray(v)[local] for k, v in vectors.items()})
